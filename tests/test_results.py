"""Result tables: which checkpoint each result measured."""

import pandas as pd

from prunerob import results


def _frames():
    train = pd.DataFrame({"stage_id": ["t1", "t2"], "checkpoint_sha": ["T1", None]})
    prune = pd.DataFrame({"stage_id": ["p1", "p1", "p2"], "train_id": ["t1", "t1", "t2"], "cr": [1.0, 2.0, 1.0],
                          "dense_sha": ["T1", "T1", "T2"], "checkpoint_sha": ["P1", "P2", "Q1"]})
    attack = pd.DataFrame({
        "stage_id": ["a1", "a1", "a2", "a3", "a4"], "prune_id": ["p1", "p1", "p1", "p2", "p1"],
        "cr": [1, 1, 2, 1, 2], "source_cr": [1, 1, 2, 1, 1],
        "scenario": ["white-box", "white-box", "white-box", "white-box", "transfer"],
        "checkpoint_sha": ["P1", "P1", "P2-old", None, "P2"], "source_sha": ["P1", "P1", "P2-old", None, "P1"]})
    return train, prune, attack


def test_each_result_is_matched_to_the_checkpoint_its_upstream_table_names():
    agreement = results.fingerprint_agreement(*_frames())
    assert agreement.loc["prune stage: its dense model"].to_dict() == {"runs": 2, "same": 1, "different": 0, "unknown": 1}
    # a1 on P1 (same), a2 on a checkpoint since made again (different), a3 from before fingerprints, a4 same
    assert agreement.loc["attack run: the checkpoint attacked"].to_dict() == {"runs": 4, "same": 2, "different": 1,
                                                                             "unknown": 1}
    assert agreement.loc["transfer attack: the checkpoint crafted on"].to_dict() == {"runs": 1, "same": 1,
                                                                                    "different": 0, "unknown": 0}


def test_tables_from_before_fingerprints_are_unknown_not_different():
    train, prune, attack = _frames()
    agreement = results.fingerprint_agreement(train.drop(columns="checkpoint_sha"), prune.drop(columns="dense_sha"),
                                              attack.drop(columns=["checkpoint_sha", "source_sha"]))
    assert (agreement["different"] == 0).all() and (agreement["same"] == 0).all()
    assert agreement["unknown"].tolist() == agreement["runs"].tolist() == [2, 4, 1]
