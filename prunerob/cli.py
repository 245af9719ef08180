"""`python -m prunerob ...`: run the study's sweep, one stage, or list what there is."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import yaml

from prunerob.spec import DEVICES, SpecError


def _param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=VALUE, e.g. arch=mlp or crs=[1,2,4]")
    name, value = text.split("=", 1)
    return name.strip(), yaml.safe_load(value)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``error: ...``) and exit status 2, like every input error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m prunerob", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sw = sub.add_parser("sweep", help="run a study profile, skipping stages whose results exist")
    sw.add_argument("--profile", default="cpu", help="a profile in prunerob/profiles (default: cpu)")
    sw.add_argument("--scheduler", help="a Dask scheduler address (tcp://host:port); default: a local pool")
    sw.add_argument("--workers", type=int, default=1, help="local pool size (default 1: torch uses every core)")
    sw.add_argument("--device", default="auto", help=f"{DEVICES} (auto: CUDA when present)")
    sw.add_argument("--dry-run", action="store_true", help="list the stages that would run, run none")
    sw.add_argument(
        "--stop-after",
        type=float,
        metavar="HOURS",
        help="start no stage after this many hours; the running ones finish (local pool only)",
    )
    sw.add_argument(
        "--finish-by",
        type=float,
        metavar="HOURS",
        help="as --stop-after, and start no stage that its estimate (the median time of its finished "
        "counterparts, as --dry-run shows) says would end after this many hours: shorter ones fill the "
        "time left; a stage with no estimate starts as with --stop-after",
    )
    sw.add_argument(
        "--only",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="run only the profile's stages with this parameter value (and what they need); "
        "repeat to narrow, e.g. --only arch=mlp --only training=standard; kind=train|prune|attack "
        "selects a stage kind (--only kind=prune: the checkpoints, no attack)",
    )

    st = sub.add_parser("stage", help="run one stage notebook with parameters (as papermill would)")
    st.add_argument("kind", help="train, prune or attack")
    st.add_argument("-p", "--param", type=_param, action="append", default=[], metavar="NAME=VALUE")
    st.add_argument("--device", default="auto")

    sub.add_parser("profiles", help="list the study profiles")

    ref = sub.add_parser("reference", help="summarize the original study's result tables into book/results")
    ref.add_argument("--source", required=True, help="folder with the original's CSV files")

    bench = sub.add_parser("bench", help="measure speed; results go to benchmarks/<name>.json")
    bench.add_argument(
        "what",
        choices=["prune", "attacks", "sweep", "convergence", "memory-format", "batch", "gradients", "onepixel"],
        help="prune: mask computation and application, all methods; attacks: attack speed and strength; "
        "sweep: attack cost per checkpoint measured in a profile's own runs, and the grid time it projects; "
        "convergence: each norm's default minimal attack against twice its steps, on --n images; "
        "memory-format: an attack step's seconds in the contiguous and the channels-last memory format; "
        "batch: a sigma-zero step's seconds per image at batch sizes 50 to 1,000 (whether batching several "
        "checkpoints could pay); gradients: per checkpoint the profile's tables attacked, the correct images "
        "whose input gradient is exactly zero (dead paths after pruning), on --n images; onepixel: an exhaustive one-pixel search against the 1-pixel robust accuracy of the tables' L0 runs "
        "on the same checkpoint",
    )
    bench.add_argument(
        "--profile", default="cpu", help="sweep, gradients: the profile whose runs are read (default: cpu)"
    )
    bench.add_argument(
        "--arch",
        help="prune: the architecture (3x32x32 input; default vgg11); memory-format: comma-separated "
        "architectures (default: cnn,cnn_original,resnet8,vgg11); batch: the same, mlp too (default: all five); "
        "gradients: those whose checkpoints are read (default: every one the profile attacked)",
    )
    bench.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="attacks, convergence, onepixel: a saved model (artifacts/.../*.pt); repeat for several, one record each "
        "in one JSON",
    )
    bench.add_argument(
        "--n",
        type=int,
        default=100,
        help="attacks, convergence, onepixel, gradients: number of test images (default 100)",
    )
    bench.add_argument(
        "--sets",
        default="default,original",
        help="attacks: the attack sets to run, comma-separated, in this order each round: default, original, "
        "strongest (every attack of a norm at its strongest preset; run in the first round only) "
        "(default: default,original)",
    )
    bench.add_argument(
        "--norms",
        help="attacks, convergence: the norms to evaluate, comma-separated: Linf, L2, L0 (default: all three)",
    )
    bench.add_argument(
        "--reuse-strongest",
        action="append",
        default=[],
        help="attacks: an earlier bench attacks JSON (repeat for several): its strongest-set results for the same checkpoint and "
        "images are taken instead of run again (they are marked reused_from)",
    )
    bench.add_argument(
        "--reuse",
        action="append",
        default=[],
        help="attacks: as --reuse-strongest, for every set (default, original, strongest): a set's results for a "
        "norm are taken where they ran the attacks and presets the set names now",
    )
    bench.add_argument(
        "--samples",
        help="attacks: a folder that keeps every attack run's per-sample results (per checkpoint, images, attack, "
        "preset and budgets); a run found there is read instead of run again, so a set whose attacks change "
        "is worked out again from the runs it shares with earlier ones (the block lists them in runs_taken); a "
        "run the results tables hold (the same checkpoint, images and attack, as a sweep ran it) is read from there",
    )
    bench.add_argument(
        "--throughput-n",
        type=int,
        default=500,
        help="attacks: images in the one batch the PGD throughput is measured on (default 500)",
    )
    bench.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="attacks: alternating rounds of the sets (the strongest runs once); each "
        "set's and norm's seconds are its best round (default 3)",
    )
    bench.add_argument(
        "--pixels",
        type=int,
        default=1,
        help="onepixel: go on greedily up to this many changed pixels where one is not enough (default 1)",
    )
    bench.add_argument(
        "--preset",
        help="convergence: the norm's default minimal attack at this preset instead of the default set's (one norm)",
    )
    bench.add_argument(
        "--beside",
        help="what else runs on the machine meanwhile (e.g. 'a 2-worker sweep'), written into the JSON "
        "(its load averages are measured too)",
    )
    bench.add_argument("--device", default="auto")
    bench.add_argument(
        "--out", help="JSON file to write (default benchmarks/<what>_<arch>.json; attacks: benchmarks/attacks.json)"
    )

    args = parser.parse_args(argv)
    try:
        if args.command == "sweep":
            from prunerob import sweep

            summary = sweep.run(
                args.profile,
                workers=args.workers,
                scheduler=args.scheduler,
                device=args.device,
                dry_run=args.dry_run,
                only=dict(args.only),
                stop_after=args.stop_after,
                finish_by=args.finish_by,
            )
            if summary.interrupted:
                # everything that finished is written (tables, run records, the sweep record); exit
                # now rather than wait in the interpreter's exit hooks for a pool whose workers were
                # ended (seen waiting there with hundreds of queued stages)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(130)
            return 1 if summary.failed or summary.blocked else 0
        if args.command == "stage":
            from prunerob import plan, runs
            from prunerob import stages as stages_mod
            from prunerob.spec import stage_from_params

            stage = stage_from_params(args.kind, dict(args.param))
            plan.preflight([stage], args.device)
            stages_mod.check_upstream(stage)  # missing or bad: which stage to run, and how
            try:
                print(runs.execute_stage(stage, args.device, progress=True))
            except Exception as exc:  # noqa: BLE001 - the notebook's error, whole, on one line
                if type(exc).__name__ != "PapermillExecutionError":
                    raise
                print(
                    f"FAILED {stage.id}: {runs.last_error_line(exc)} (the run's notebook: "
                    f"{runs.run_record(stage).with_name(runs.run_record(stage).stem + '.failed.ipynb')})",
                    file=sys.stderr,
                )
                return 1
            return 0
        if args.command == "reference":
            from pathlib import Path

            from prunerob import reference

            print(f"wrote {reference.write(Path(args.source))}")
            return 0
        if args.command == "bench":
            from pathlib import Path

            from prunerob import bench as bench_mod

            out, command, checkpoints = Path(args.out) if args.out else None, " ".join(sys.argv), args.checkpoint
            if args.what == "prune":
                arch = args.arch or "vgg11"
                records = bench_mod.bench_prune(arch)
                path = bench_mod.write(f"prune_{arch}", records, command, out, args.beside)
                print(bench_mod.summarize_prune(records))
            elif args.what == "memory-format":
                records = bench_mod.bench_memory_format(args.arch.split(",") if args.arch else None)
                path = bench_mod.write("memory_format", records, command, out, args.beside)
                for r in records:
                    print(
                        f"{r['arch']}: channels-last {r['speedup_bare']:.2f}x (forward + backward), "
                        f"{r['speedup_sigma_zero']:.2f}x (sigma-zero step)"
                    )
            elif args.what == "batch":
                records = bench_mod.bench_batch(args.arch.split(",") if args.arch else None)
                path = bench_mod.write("batch", records, command, out, args.beside)
                for r in records:
                    rel = ", ".join(f"{k}: {v:.2f}" for k, v in r["relative_to_largest"].items())
                    print(f"{r['arch']}: seconds per image of a sigma-zero step, relative to a batch of 1,000: {rel}")
            elif args.what == "gradients":
                records = bench_mod.bench_gradients(args.profile, args.arch.split(",") if args.arch else None, args.n)
                path = bench_mod.write(f"gradients_{args.profile}", records, command, out, args.beside)
                worst = sorted(records, key=lambda r: -r["correct_zero_gradient"] / max(r["correct"], 1))[:3]
                for r in worst:
                    print(
                        f"{r['arch']} {r['structure']} {r['scope']} {r['criterion']} CR {r['cr']:g}: "
                        f"{r['correct_zero_gradient']} of {r['correct']} correct images with a zero gradient"
                    )
            elif args.what == "sweep":
                records = bench_mod.bench_sweep(args.profile)
                path = bench_mod.write(f"sweep_{args.profile}", records, command, out, args.beside)
                for r in records:
                    if "projection" in r:
                        print(
                            f"{r['arch']} ({r['training']}): {r['seconds_per_checkpoint_papermill']:.0f} s per "
                            f"checkpoint, {r['projection']}: {r['projected_minutes']:.0f} min projected; "
                            f"measured on its {r['checkpoints_measured']} checkpoints: "
                            f"{r['measured_minutes']:.0f} min"
                        )
                    elif "total" in r:
                        print(
                            f"profile {r['profile']}, {r['total']}: {r['hours_on_workers']:.1f} h "
                            f"({r['hours']:.1f} h of stage time; {r['stages_without_run_record']} of "
                            f"{sum(r['stages'].values())} stages without a run record)"
                        )
            elif args.what == "onepixel":
                path = bench_mod.bench_onepixel_many(
                    list(map(Path, checkpoints)),
                    args.n,
                    args.device,
                    out,
                    command,
                    beside=args.beside,
                    pixels=args.pixels,
                )
            elif args.what == "convergence":
                path = bench_mod.bench_convergence_many(
                    list(map(Path, checkpoints)),
                    args.n,
                    args.norms,
                    args.device,
                    out,
                    command,
                    preset=args.preset,
                    beside=args.beside,
                )
            else:
                path = bench_mod.bench_attacks_many(
                    list(map(Path, checkpoints)),
                    args.n,
                    args.device,
                    args.throughput_n,
                    args.rounds,
                    args.sets,
                    out,
                    command,
                    norms=args.norms,
                    reuse_strongest=[Path(p) for p in args.reuse_strongest],
                    beside=args.beside,
                    reuse=[Path(p) for p in args.reuse],
                    samples_dir=Path(args.samples) if args.samples else None,
                )
            print(f"wrote {path}")
            return 0
        if args.command == "profiles":
            from prunerob import profiles

            for name in profiles.profiles():
                try:
                    print(f"{name}: {profiles.load_profile(name).get('description', '')}")
                except SpecError as exc:  # the others are still listed
                    print(f"{name}: BROKEN: {exc}")
            return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - input errors only; anything else keeps its traceback
        from prunerob.data import DataError
        from prunerob.stages import MissingUpstream

        if not isinstance(exc, (SpecError, DataError, MissingUpstream)):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
