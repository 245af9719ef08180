"""sigma-zero and the minimal-attack ensembles on a pruned CNN trained on real MNIST (project issue 20:
PGD_0 with a budget search over-claimed L0 robustness where pruning bites)."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from prunerob import attacks, catalog
from prunerob import evaluate as ev
from prunerob.spec import AttackSpec

L0_EPS = (1, 2, 4, 8, 16)
N = 100  # images per run in the unmarked tests (each run well under a minute on one core)


@pytest.fixture(scope="module")
def pruned_cnn(trained_cnn):
    """The 1-epoch MNIST CNN pruned to CR 8 (global magnitude unstructured, not fine-tuned)."""
    from prunerob import prune

    model = copy.deepcopy(trained_cnn)
    masks = prune.compute_masks(model, structure="unstructured", scope="global", criterion="magnitude", cr=8)
    prune.apply_masks(model, masks)
    return model.eval()


def _run(model, x, y, attack, preset="", eps=L0_EPS):
    spec = AttackSpec(attack=attack, preset=preset, eps=eps, n_samples=len(y), attack_batch_size=len(y))
    return ev.attack_curve(model, x, y, spec, (1, 28, 28))


@pytest.fixture(scope="module")
def runs(pruned_cnn, mnist):
    """sigma-zero, PGD_0-min and their ensemble (default presets) on the first N test images; the
    ensemble's components are recorded as the ensemble ran them."""
    x, y = mnist.eval_subset(N)
    out = {name: _run(pruned_cnn, x, y, name) for name in ("l0_sigma_zero", "l0_pgd_min")}
    seen = {}
    info = attacks.ATTACKS["l0_pgd_min"]

    def recording(model, xb, yb, **params):
        adv = info.run(model, xb, yb, **params)
        seen.setdefault("l0_pgd_min", (adv, params.get("known")))  # the run's; then the convergence check's
        return adv

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(attacks.ATTACKS, "l0_pgd_min", type(info)(**{**info.__dict__, "run": recording}))
        torch.manual_seed(0)
        out["l0_ensemble"] = _run(pruned_cnn, x, y, "l0_ensemble")
    out["_seen"] = seen
    out["_xy"] = (x, y)
    out["_model"] = pruned_cnn
    return out


def _distance(res):
    return res.samples.set_index("sample")["distance"]


@pytest.mark.slow
def test_sigma_zero_candidates_verify(runs):
    res = runs["l0_sigma_zero"]
    # incl. no violations, breaks all; its convergence is sigma-zero's step count, not verification
    assert res.checks.set_index("check").drop(index=ev.CONVERGENCE_CHECK)["passed"].all(), res.checks
    assert res.curve["violations"].sum() == 0
    s = res.samples
    found = s["success"] & (s["clean_pred"] == s["label"])
    assert (s.loc[found, "adv_pred"] != s.loc[found, "label"]).all()
    d = s.loc[found, "distance"]
    assert np.isfinite(d).all() and (d > 0).all() and (d == d.round()).all() and (d <= 28 * 28).all()
    wrong = s["clean_pred"] != s["label"]
    assert (s.loc[~wrong, "source_attack"] == "l0_sigma_zero").all()
    assert (s.loc[wrong, "source_attack"] == ev.MISCLASSIFIED).all()


def test_sigma_zero_returns_the_input_where_it_finds_nothing(pruned_cnn, mnist):
    x, y = mnist.eval_subset(8)
    adv = attacks._l0_sigma_zero(pruned_cnn, x, y, steps=0)  # no step: only the clean point is checked
    wrong = pruned_cnn(x).argmax(1) != y
    assert torch.equal(adv[~wrong], x[~wrong])


def test_sigma_zero_counts_pixels_not_channels(mnist):
    """On a 3-channel input the threshold zeroes whole pixels and the best candidate's L0 is counted in
    pixels: sigma-zero must not trade one 3-channel pixel for three 1-channel ones."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10)).eval()
    x = torch.rand(16, 3, 8, 8)
    y = model(x).argmax(1)
    adv = attacks._l0_sigma_zero(model, x, y, steps=200)
    changed = (adv - x) != 0
    broken = model(adv).argmax(1) != y
    assert broken.float().mean() >= 0.9
    # a changed pixel is usually changed in all its channels (the gradient of s/(s+sigma) moves them together)
    per_pixel = changed.any(1).sum((1, 2)).float()
    assert (per_pixel[broken] > 0).all()
    assert (ev.distances(x, adv, "L0")[broken] == per_pixel[broken]).all()


@pytest.mark.slow
def test_sigma_zero_is_no_weaker_than_pgd0_min(runs):
    sz = runs["l0_sigma_zero"].curve.set_index("eps")["robust_acc"]
    pgd = runs["l0_pgd_min"].curve.set_index("eps")["robust_acc"]
    for eps in (2, 4, 8):
        assert sz[eps] <= pgd[eps] + 0.03, (eps, sz[eps], pgd[eps])


@pytest.mark.slow
def test_ensemble_is_never_weaker_than_its_components(runs):
    ens = runs["l0_ensemble"]
    assert ens.checks.set_index("check").drop(index=ev.CONVERGENCE_CHECK)["passed"].all(), ens.checks
    d_ens = _distance(ens)
    # sigma-zero is deterministic (no random start): the ensemble ran the same sigma-zero
    assert (d_ens <= _distance(runs["l0_sigma_zero"])).all()
    # the PGD_0-min the ensemble ran (searching only below sigma-zero's distances), on the samples the
    # model classifies correctly (a minimal attack never runs on the others: their distance is 0)
    x, y = runs["_xy"]
    with torch.no_grad():
        ok_t = runs["_model"](x).argmax(1) == y
    ok = ok_t.numpy()
    pgd_adv, known = runs["_seen"]["l0_pgd_min"]
    assert known is not None and len(pgd_adv) == ok.sum()  # it was told sigma-zero's distances
    d_pgd_inside = attacks.verified_distance(runs["_model"], x[ok_t], y[ok_t], pgd_adv, "L0")
    assert (torch.tensor(d_ens.to_numpy()[ok], dtype=d_pgd_inside.dtype) <= d_pgd_inside).all()
    assert (d_ens.to_numpy()[~ok] == 0).all()
    # and at every budget, no weaker than a separate PGD_0-min run (its random restarts differ)
    e = ens.curve.set_index("eps")["robust_acc"]
    for name in ("l0_sigma_zero", "l0_pgd_min"):
        c = runs[name].curve.set_index("eps")["robust_acc"]
        tol = 0.0 if name == "l0_sigma_zero" else 0.02
        assert (e <= c + tol).all(), (name, e.to_dict(), c.to_dict())


@pytest.mark.slow
def test_source_attack_names_the_component(runs):
    s = runs["l0_ensemble"].samples
    assert s["source_attack"].map(type).eq(str).all()
    assert set(s["source_attack"]) <= {"l0_sigma_zero", "l0_pgd_min", "l0_ensemble", ev.MISCLASSIFIED}
    found = s["success"] & (s["clean_pred"] == s["label"])
    assert found.all() or set(s.loc[~found & (s["clean_pred"] == s["label"]), "source_attack"]) <= {"l0_ensemble"}
    assert (s.loc[found, "source_attack"] != "l0_ensemble").all()
    # where PGD_0-min gave the candidate it beat sigma-zero's distance
    d_sz = _distance(runs["l0_sigma_zero"])
    by_pgd = s.loc[found & (s["source_attack"] == "l0_pgd_min"), "sample"]
    assert (s.set_index("sample").loc[by_pgd, "distance"] < d_sz.loc[by_pgd]).all()


def test_plain_attacks_are_their_own_source(trained_cnn, mnist):
    x, y = mnist.eval_subset(20)
    res = _run(trained_cnn, x, y, "linf_pgd", eps=(0.1,))
    assert (res.samples["source_attack"] == "linf_pgd").all()


def test_a_run_that_names_the_wrong_number_of_sources_fails(trained_cnn, mnist, monkeypatch):
    info = attacks.ATTACKS["l0_pgd_min"]
    monkeypatch.setitem(
        attacks.ATTACKS,
        "l0_pgd_min",
        type(info)(**{**info.__dict__, "run": lambda model, x, y, **p: (x.clone(), ["a"])}),
    )
    x, y = mnist.eval_subset(4)
    with pytest.raises(RuntimeError, match="sources"):
        _run(trained_cnn, x, y, "l0_pgd_min")


@pytest.mark.slow
def test_l2_ensemble_is_the_smaller_of_its_components(trained_cnn, mnist, monkeypatch):
    """The selection logic, with the components' cheap presets (DDN at 100 steps instead of 1,000)."""
    x, y = mnist.eval_subset(40)
    eps = (0.5, 1.0, 2.0)
    info = catalog.ATTACKS["l2_ensemble"]  # the catalog owns the presets a spec runs
    assert [c[0] for c in info.presets["default"]["components"]] == ["l2_ddn", "l2_fmn"]
    cheap = {"default": {"components": [["l2_ddn", "default"], ["l2_fmn", "default"]]}}
    monkeypatch.setitem(catalog.ATTACKS, "l2_ensemble", dataclasses.replace(info, presets=cheap))
    ens = _run(trained_cnn, x, y, "l2_ensemble", eps=eps)
    assert ens.checks.set_index("check").drop(index=ev.CONVERGENCE_CHECK)["passed"].all(), ens.checks
    comps = dict(cheap["default"]["components"])
    d = {name: _distance(_run(trained_cnn, x, y, name, preset=preset, eps=eps)) for name, preset in comps.items()}
    d_ens = _distance(ens)
    # foolbox's DDN and FMN have no random start: the ensemble ran the same candidates
    assert np.allclose(d_ens, np.minimum(*d.values()), rtol=1e-5, atol=1e-6)
    s = ens.samples
    assert set(s["source_attack"]) <= {*comps, "l2_ensemble", ev.MISCLASSIFIED}


@pytest.mark.slow
def test_l0_attacks_on_a_pruned_cnn_against_brendel_bethge(pruned_cnn, mnist):
    """300 images: sigma-zero, PGD_0-min, the ensemble and Brendel-Bethge (fast) at 2 / 4 / 8 px."""
    x, y = mnist.eval_subset(300)
    acc = {}
    for name, preset in (("l0_sigma_zero", ""), ("l0_pgd_min", ""), ("l0_ensemble", ""), ("l0_bb", "fast")):
        torch.manual_seed(0)
        res = _run(pruned_cnn, x, y, name, preset=preset, eps=(2, 4, 8))
        assert res.curve["violations"].sum() == 0
        acc[name] = res.curve.set_index("eps")["robust_acc"]
    for eps in (2, 4, 8):
        assert acc["l0_sigma_zero"][eps] <= acc["l0_pgd_min"][eps] + 0.03
        assert acc["l0_ensemble"][eps] <= min(acc["l0_sigma_zero"][eps], acc["l0_pgd_min"][eps] + 0.02)
        assert acc["l0_ensemble"][eps] <= acc["l0_bb"][eps] + 0.03


@pytest.mark.slow  # 53 s on two cores: Brendel-Bethge's solver, twice
def test_brendel_bethge_starts_as_foolbox_would_and_survives_a_model_that_predicts_one_class(trained_cnn, mnist):
    """l0_bb draws its starting points from the other evaluation images as Foolbox's init_attack
    would (same draws, same result on a trained CNN); on a collapsed model, which gives one class to
    every image, the images of that class have no start: they get no candidate (the input itself)
    instead of failing the whole batch, and the others are still attacked."""
    import foolbox as fb

    x, y = mnist.eval_subset(20)
    params = dict(catalog.attack("l0_bb").presets["fast"], steps=10, binary_search_steps=3)
    np.random.seed(0)
    ours = attacks.get("l0_bb").run(trained_cnn, x, y, **params)
    np.random.seed(0)
    fmodel = fb.PyTorchModel(trained_cnn, bounds=(0, 1))
    starter = fb.attacks.DatasetAttack()
    starter.feed(fmodel, x)
    kw = {k: v for k, v in params.items() if k != "init"}
    _, theirs, _ = fb.attacks.L0BrendelBethgeAttack(init_attack=starter, **kw)(fmodel, x, y, epsilons=None)
    assert torch.equal(ours, theirs)

    class OneClass(torch.nn.Module):  # class 3 for every image, a little less sure where pixels are bright
        def forward(self, inp):
            logits = torch.zeros(len(inp), 10)
            logits[:, 3] = 5.0 - inp.flatten(1).mean(1)
            return logits

    labels = y.clone()
    labels[:5] = 3  # five images of the one class the model ever says: no image of another class to start from
    adv = attacks.get("l0_bb").run(OneClass(), x, labels, **params)
    assert adv.shape == x.shape and torch.equal(adv[:5], x[:5])


class _Linear(torch.nn.Module):
    """Two classes; class 1 where ``weights . x + bias`` is positive (x flattened)."""

    def __init__(self, weights: torch.Tensor, bias: float):
        super().__init__()
        self.w, self.b = weights.flatten(), bias

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([-s, s], 1)


def test_one_pixel_search_finds_the_pixel_and_colour_that_decide_and_nothing_where_one_pixel_cannot():
    # grey: class 1 iff pixel (1, 2) is white; a second model needs two pixels white
    w = torch.zeros(1, 4, 4)
    w[0, 1, 2] = 1.0
    x, y = torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long)
    adv = attacks.one_pixel_search(_Linear(w, -0.5), x, y)
    assert ((adv - x) != 0).flatten(1).sum(1).tolist() == [1, 1] and (adv[:, 0, 1, 2] == 1).all()
    w2 = torch.zeros(1, 4, 4)
    w2[0, 0, 0] = w2[0, 3, 3] = 1.0
    assert torch.equal(attacks.one_pixel_search(_Linear(w2, -1.5), x, y), x)
    # RGB: only the colour (1, 0, 1) at pixel (2, 1) of a grey image flips it: a corner of the colour cube
    w3 = torch.zeros(3, 4, 4)
    w3[:, 2, 1] = torch.tensor([1.0, -1.0, 1.0])
    x3 = torch.full((1, 3, 4, 4), 0.5)
    adv3 = attacks.one_pixel_search(_Linear(w3, -1.5), x3, torch.zeros(1, dtype=torch.long))
    assert adv3[0, :, 2, 1].tolist() == [1.0, 0.0, 1.0]
    assert attacks.distances(x3, adv3, "L0").item() == 1 and torch.equal(adv3[0, :, 0], x3[0, :, 0])


def test_one_pixel_search_on_a_pruned_cnn_agrees_with_a_pixel_by_pixel_search(pruned_cnn, mnist):
    """Real MNIST, the pruned CNN: what the search returns changes one pixel and is misclassified, and
    where it returns the input no single black or white pixel fools the model (checked by setting each
    pixel in turn, without the search's batching)."""
    x, y = mnist.eval_subset(12)
    with ev.attack_mode(pruned_cnn):
        ok = pruned_cnn(x).argmax(1) == y
        x, y = x[ok], y[ok]
        adv = attacks.one_pixel_search(pruned_cnn, x, y, chunk_values=50_000)  # several batches per image
        changed = attacks.distances(x, adv, "L0")
        assert (changed <= 1).all()
        found = changed == 1
        assert (pruned_cnn(adv[found]).argmax(1) != y[found]).all()
        for i in range(len(x)):
            fooled = False
            for value in (0.0, 1.0):
                for p in range(28 * 28):
                    v = x[i : i + 1].clone()
                    v.view(-1)[p] = value
                    fooled |= bool(pruned_cnn(v).argmax(1).item() != y[i].item())
                if fooled:
                    break
            assert fooled == bool(found[i]), i


def test_l0_onepixel_runs_as_a_fixed_attack_at_one_pixel_without_an_unbounded_check(pruned_cnn, mnist):
    """As a stage runs it: a curve at 0 and 1 px, every sanity check but the unbounded one (a one-pixel
    search cannot reach an unbounded budget), and a 1-px result no weaker than the exhaustive search."""
    x, y = mnist.eval_subset(30)
    res = _run(pruned_cnn, x, y, "l0_onepixel", eps=(1,))
    assert res.curve["eps"].tolist() == [0.0, 1.0]
    assert set(res.checks["check"]) == {"eps0_equals_clean", "monotone_in_eps", "no_violations"}
    assert res.checks["passed"].all()
    at1 = res.samples[res.samples["eps"] == 1]
    assert (at1.loc[at1["success"] & (at1["clean_pred"] == at1["label"]), "distance"] == 1).all()
    with ev.attack_mode(pruned_cnn):
        ok = pruned_cnn(x).argmax(1) == y
        adv = attacks.one_pixel_search(pruned_cnn, x[ok], y[ok])
        broken = int((pruned_cnn(adv).argmax(1) != y[ok]).sum())
    assert res.curve.set_index("eps").loc[1.0, "robust_acc"] == pytest.approx((int(ok.sum()) - broken) / 30)


def test_the_greedy_search_goes_on_pixel_by_pixel_where_one_is_not_enough():
    """Two white pixels needed: the greedy search (max_pixels 2) finds them, one pixel alone finds
    nothing, and a first round that breaks the sample is the one-pixel search's answer."""
    w = torch.zeros(1, 4, 4)
    w[0, 0, 0], w[0, 3, 3] = 1.0, 1.2
    model, x, y = _Linear(w, -1.5), torch.zeros(1, 1, 4, 4), torch.zeros(1, dtype=torch.long)
    assert torch.equal(attacks.one_pixel_search(model, x, y), x)
    adv = attacks.one_pixel_search(model, x, y, max_pixels=2)
    assert attacks.distances(x, adv, "L0").item() == 2 and adv[0, 0, 0, 0] == 1 and adv[0, 0, 3, 3] == 1
    assert torch.equal(attacks.one_pixel_search(model, x, y, max_pixels=3), adv)  # stops when broken
    w1 = torch.zeros(1, 4, 4)
    w1[0, 1, 2] = 1.0
    assert torch.equal(
        attacks.one_pixel_search(_Linear(w1, -0.5), x, y, max_pixels=4),
        attacks.one_pixel_search(_Linear(w1, -0.5), x, y),
    )


def test_l0_greedy_gives_the_curve_up_to_its_budget_in_one_run(pruned_cnn, mnist):
    """A minimal attack up to 4 px on the pruned CNN: its curve at 1, 2 and 4 px from one run, no
    unbounded check (it searches 4 pixels at most), every candidate verified within 4 pixels, and at
    4 px what the greedy search itself breaks."""
    from prunerob.spec import AttackSpec

    assert AttackSpec(attack="l0_greedy").eps == (1, 2, 4)  # the L0 grid up to its max_budget
    assert catalog.attack("l0_greedy").presets["default"]["max_pixels"] == catalog.attack("l0_greedy").max_budget
    x, y = mnist.eval_subset(20)
    res = _run(pruned_cnn, x, y, "l0_greedy", eps=(1, 2, 4))
    assert res.curve["eps"].tolist() == [0.0, 1.0, 2.0, 4.0]
    assert set(res.checks["check"]) == {"eps0_equals_clean", "monotone_in_eps", "no_violations"}
    assert res.checks["passed"].all()
    s = res.samples[res.samples["success"] & (res.samples["clean_pred"] == res.samples["label"])]
    assert ((s["distance"] >= 1) & (s["distance"] <= 4)).all()
    with ev.attack_mode(pruned_cnn):
        ok = pruned_cnn(x).argmax(1) == y
        adv = attacks.one_pixel_search(pruned_cnn, x[ok], y[ok], max_pixels=4)
        broken = int((pruned_cnn(adv).argmax(1) != y[ok]).sum())
    assert res.curve.set_index("eps").loc[4.0, "robust_acc"] == pytest.approx((int(ok.sum()) - broken) / 20)
