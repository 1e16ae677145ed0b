"""Claim 5 (chapter 5): the talk's hypothesis that lottery tickets work in part by removing memorization.

The hypothesis is a chain of steps.  Each is one criterion (:func:`memlib.claims.criterion`) decided on a 95%
t-interval over seeds by the book's symmetric rule: it *holds* when the whole interval clears the margin on the
predicted side, *fails* when the whole interval is on the other side of the margin, and *contradicts* when the
whole interval is beyond "no effect" in the opposite direction.  The steps combine as the talk's hypothesis
(``combine(criteria, "hypothesis")``): *supported* if every step holds, *contradicted* if any step is
contradicted, *not supported* if one fails, *inconclusive* otherwise.

1. **Memorization channels move less.**  After training with example-tied dropout, the memorization channels'
   incoming weights moved less from their initialisation than the generalization channels': per seed, the mean
   over dropout sites of mean |w − w0| (memorization) / mean |w − w0| (generalization), below ``1 − margin``;
   above 1 contradicts.  (Absolute |w| is reported as a second view: weight decay shrinks rarely-used channels
   whatever they store, and a convolution before BatchNorm is scale-invariant, so |w| alone says little.)
2. **Magnitude pruning hits memorization channels.**  Of the weights the first round removes from those layers, the
   share in memorization channels over the share expected by chance (their share of the weights), above
   ``1 + margin``; below 1 contradicts.
3. **The example-tied ticket memorizes less.**  The last round's magnitude mask, rewound to iteration k and
   retrained as an ordinary network, fits fewer mislabeled training examples than a random mask with the same
   per-layer counts (rewound to k, retrained the same way): mislabeled accuracy random − ticket above the margin
   (a ticket that memorizes significantly *more* contradicts), and (3b) by more than it loses on clean training
   examples, or the ticket would only fit less of everything.
4. **Ordinary tickets memorize less.**  The same two criteria for the ordinary lottery ticket: iterative magnitude
   pruning of the network trained without example-tied dropout (open_lth's procedure).

Preconditions (:func:`memlib.claims.precondition`; unless both hold, the hypothesis is *not testable at this
scale*): steps 1–2 need an example-tied network that localizes memorization (with its memorization channels
dropped it fits fewer than ``LOCALIZES`` of the mislabeled examples); steps 3–4 need a dense ordinary network that
memorizes (it fits more than ``MEMORIZES`` of them), each on a t-interval over seeds.

With no effect at all, the hypothesis reads "contradicted" with probability at most 2.5%: a step is contradicted
only on the 1 − 5%/4 interval, the four steps with a contradiction side sharing one tail of 2.5%
(:func:`memlib.claims.settle`); "not supported" likewise shares its 2.5% among the six criteria when each sits at
its margin; and it reads "supported" at most 2.5% of the time (every step must hold).
"""
from __future__ import annotations

import pandas as pd

from ..catalog import dataset_title, model_title
from ..experiments.lth_vs_dropout import Chain, final_sparsity
from ..measure import Interval, Measured, t_interval
from ..probes.channels import GENERALIZATION, MEMORIZATION
from ..pruning import Arm
from . import (CONTRADICTS, FAILS, HOLDS, UNDECIDED, UNTESTED, Criterion, Planned, Scale, Verdict, combine, looks_of,
               settle)

REFERENCE = {
    "lth": "magnitude-pruned + rewound subnetworks train to the dense network's accuracy; randomly pruned ones "
           "do not (Frankle & Carbin 2019; Frankle et al. 2020)",
    "etd": "example-tied dropout, p_gen = 0.4, p_mem = 0.2: dropping memorization channels takes mislabeled "
           "training accuracy from ~100% to ~3% (Maini et al. 2023)",
    "hypothesis": "memorization channels stay near their initial (small) weights, so magnitude pruning removes them "
                  "and rewinding works in part by removing memorization (talk; 'may be controversial')",
}
# Thresholds, directions, sub-claims and guards: the analysis plan's.  Its thresholds carry margins: how large an
# effect must be to count (the hypothesis predicts a clear difference, not any difference).
PLAN = Planned("lth_vs_dropout")
MEMORIZES = PLAN.threshold("dense_memorizes")  # steps 3-4: the dense ordinary network fits more than this share of
#                                                the mislabeled examples
LOCALIZES = PLAN.threshold("localizes")  # steps 1-2: the example-tied network, memorization dropped, fits fewer
CHAIN_KEY = {Chain.ETD: "etd", Chain.ORDINARY: "ordinary"}  # the chains' names in the analysis plan's keys
STEP_NAMES = {"moved": "memorization channels move less", "enrichment": "pruning hits memorization channels",
              Chain.ETD: "the example-tied ticket memorizes less", Chain.ORDINARY: "ordinary tickets memorize less"}


# ----------------------------------------------------------------------------- per-seed quantities

def channel_ratio(channels: pd.DataFrame, stat: str = "moved") -> pd.Series:
    """Per seed: mean over dropout sites of (memorization channels' mean ``stat``) / (generalization channels')."""
    g = channels.groupby(["seed", "site", "group"])[stat].mean().unstack("group")
    return (g[MEMORIZATION] / g[GENERALIZATION]).groupby("seed").mean()


def pruning_enrichment(overlap: pd.DataFrame, rnd: int = 1) -> pd.DataFrame:
    """Per seed: share of removed site-layer weights in memorization channels, the chance share, their ratio."""
    o = overlap[overlap["round"] == rnd].groupby("seed")[["removed", "removed_mem", "available",
                                                          "available_mem"]].sum()
    out = pd.DataFrame({"share": o.removed_mem / o.removed, "chance": o.available_mem / o.available})
    out["enrichment"] = out.share / out.chance
    return out


def gap(arms: pd.DataFrame, chain: Chain, metric: str = "train_noisy_acc", a: Arm = Arm.RANDOM_K,
        b: Arm = Arm.MAGNITUDE_K) -> pd.Series:
    """Per seed, at the last round of ``chain``: ``metric`` of arm ``a`` minus arm ``b`` (default: how many more
    mislabeled examples the random mask fits than the ticket)."""
    last = arms[(arms.chain == chain.value) & (arms["round"] == arms["round"].max())]

    def of(arm: Arm) -> pd.Series:
        return last.loc[last.arm == arm.value].set_index("seed")[metric]

    return of(a) - of(b)


def dense(arms: pd.DataFrame, chain: Chain = Chain.ORDINARY) -> pd.DataFrame:
    return arms[(arms.chain == chain.value) & (arms.arm == Arm.DENSE.value)]


# ----------------------------------------------------------------------------- the verdict

def _memorization_criteria(arms: pd.DataFrame, chain: Chain) -> tuple[list[Criterion], Interval, Interval]:
    noisy = gap(arms, chain)
    clean = gap(arms, chain, "train_clean_acc")
    gi = t_interval(noisy, "points")
    di = t_interval((noisy - clean).to_numpy(), "points")
    who = "the example-tied ticket" if chain is Chain.ETD else "the ordinary ticket"
    step = "3" if chain is Chain.ETD else "4"
    crit = [
        PLAN.criterion(f"{CHAIN_KEY[chain]}_ticket_less", f"step {step} ({STEP_NAMES[chain]}): {who} (magnitude "
                       "mask, rewound to k) fits fewer mislabeled training examples than a random mask with the same "
                       "per-layer counts (mislabeled accuracy, random − ticket, at the last round)", gi, opposite=0.0,
                       note="below 0 contradicts"),
        PLAN.criterion(f"{CHAIN_KEY[chain]}_ticket_selective", f"step {step}b: {who} loses more mislabeled than clean "
                       "training accuracy against the random mask ((mislabeled gap) − (clean gap))", di,
                       note=f"clean accuracy random − ticket {t_interval(clean, 'points').text()}"),
    ]
    return crit, gi, di


def preconditions(result, cfg=None) -> list[Criterion]:
    """Steps 1-2 need example-tied dropout to localize memorization; steps 3-4 need a dense network that memorizes."""
    arms = result.tables["arms"]
    etd = dense(arms, Chain.ETD)
    dense_fit = t_interval(dense(arms).train_noisy_acc, "percent")
    return [
        PLAN.precondition("localizes", f"steps 1–2: the example-tied network localizes memorization: with its "
                          f"memorization channels dropped it fits fewer than {LOCALIZES:.0%} of the mislabeled "
                          "examples", t_interval(etd.train_noisy_acc, "percent"), paper="~3% (Maini et al.)",
                          why="steps 1 and 2 ask whether the memorization channels are small and pruned first; if "
                              "dropping them does not remove memorization, they do not hold it, and their weights "
                              "say nothing about memorization. How much they moved or how often pruning hits them is "
                              "another matter"),
        PLAN.precondition("dense_memorizes", f"steps 3–4: the dense ordinary network memorizes: it fits more than "
                          f"{MEMORIZES:.0%} of the mislabeled examples", dense_fit,
                          why="steps 3 and 4 ask whether tickets memorize less than random masks; with little "
                              "memorization in the dense network there is little for either to remove. The dense "
                              "network's fit is not the difference between the pruned arms"),
    ]


def check(result, cfg=None) -> Verdict:
    arms, channels, overlap = result.tables["arms"], result.tables["channels"], result.tables["overlap"]
    seeds = sorted(arms.seed.unique())
    crit: list[Criterion] = []

    # 1. memorization channels move less from their initialisation (absolute |w| as the second view)
    moved = t_interval(channel_ratio(channels, "moved"), "ratio")
    size = t_interval(channel_ratio(channels, "mean_abs"), "ratio")
    crit.append(PLAN.criterion(
        "moved", f"step 1 ({STEP_NAMES['moved']}): after example-tied training, memorization channels' incoming "
        "weights moved less from their initialisation than generalization channels' (ratio of mean |w − w0|, "
        "memorization / generalization)", moved, opposite=1.0,
        note=f"above 1 contradicts; second view, ratio of mean |w|: {size.text()}"))

    # 2. magnitude pruning removes memorization-channel weights more often than chance
    enr = pruning_enrichment(overlap)
    enrich = t_interval(enr.enrichment, "ratio")
    crit.append(PLAN.criterion(
        "enrichment", f"step 2 ({STEP_NAMES['enrichment']}): the first round of magnitude pruning removes "
        "memorization-channel weights more often than chance (share removed / share available)", enrich,
        opposite=1.0, note=f"below 1 contradicts; {Measured(enr.share.mean(), 'percent')} of removed weights vs "
                           f"{Measured(enr.chance.mean(), 'percent')} by chance"))

    # 3 and 4. tickets fit fewer mislabeled examples than random masks at the same sparsity
    dense_ord = dense(arms)
    dense_fit = float(dense_ord.train_noisy_acc.mean())
    etd_crit, etd_gap, etd_did = _memorization_criteria(arms, Chain.ETD)
    ord_crit, ord_gap, ord_did = _memorization_criteria(arms, Chain.ORDINARY)
    crit += etd_crit + ord_crit
    looks = looks_of(cfg)
    crit = settle(preconditions(result, cfg) + crit, "hypothesis", looks)  # outcomes settled for all steps

    status = combine(crit, "hypothesis", looks)
    outcome = {"moved": crit[2].outcome, "enrichment": crit[3].outcome,
               Chain.ETD: _step_outcome(crit[4:6]), Chain.ORDINARY: _step_outcome(crit[6:8])}
    summary = (f"The hypothesis is {status} at this scale ({len(seeds)} seed{'s' if len(seeds) != 1 else ''}): "
               + "; ".join(f"{STEP_NAMES[k]}: {v}" for k, v in outcome.items()) + ".")

    last = int(arms["round"].max())
    sp = float(arms.loc[arms["round"] == last, "sparsity"].mean())

    def mean_at(chain: Chain, arm: Arm, col: str = "train_noisy_acc") -> Measured:
        a = arms[(arms.chain == chain.value) & (arms.arm == arm.value)]
        if arm.pruned:
            a = a[a["round"] == last]
        return Measured(float(a[col].mean()) if len(a) else float("nan"), "percent")

    measured = {
        "status_moved": outcome["moved"], "status_enrichment": outcome["enrichment"],
        "status_etd_ticket": outcome[Chain.ETD], "status_ordinary_ticket": outcome[Chain.ORDINARY],
        "moved_ratio": moved, "abs_ratio": size, "enrichment": enrich,
        "pruned_share_mem": Measured(float(enr.share.mean()), "percent"),
        "chance_share_mem": Measured(float(enr.chance.mean()), "percent"),
        "etd_noisy_gap": etd_gap, "etd_specific_gap": etd_did, "ord_noisy_gap": ord_gap, "ord_specific_gap": ord_did,
        "etd_clean_gap": t_interval(gap(arms, Chain.ETD, "train_clean_acc"), "points"),
        "ord_clean_gap": t_interval(gap(arms, Chain.ORDINARY, "train_clean_acc"), "points"),
        "ord_test_gap": t_interval(gap(arms, Chain.ORDINARY, "test_acc"), "points"),
        "ord_rewind0_gap": t_interval(gap(arms, Chain.ORDINARY, b=Arm.MAGNITUDE_0), "points"),
        "dense_noisy_acc": Measured(dense_fit, "percent"),
        "dense_clean_acc": Measured(float(dense_ord.train_clean_acc.mean()), "percent"),
        "dense_test_acc": Measured(float(dense_ord.test_acc.mean()), "percent"),
        "etd_dropped_noisy_acc": mean_at(Chain.ETD, Arm.DENSE),
        "etd_dropped_clean_acc": mean_at(Chain.ETD, Arm.DENSE, "train_clean_acc"),
        "etd_dropped_test_acc": mean_at(Chain.ETD, Arm.DENSE, "test_acc"),
        "final_sparsity": Measured(sp, "percent"), "rounds": last,
        **{f"{c.name.lower()}_{a.name.lower()}_noisy_acc": mean_at(c, a)
           for c in Chain for a in (Arm.MAGNITUDE_K, Arm.RANDOM_K)},
        **{f"ordinary_{a.name.lower()}_noisy_acc": mean_at(Chain.ORDINARY, a) for a in (Arm.MAGNITUDE_0, Arm.REINIT)},
        **{f"ordinary_{a.name.lower()}_test_acc": mean_at(Chain.ORDINARY, a, "test_acc")
           for a in (Arm.MAGNITUDE_K, Arm.RANDOM_K)},
        "n_seeds": len(seeds),
    }
    scale = None
    if cfg is not None:
        note = (f"{last} pruning round{'s' if last != 1 else ''} of {cfg.prune_rate:.0%} ({cfg.scope}) → "
                f"{Measured(final_sparsity(cfg.values), 'percent')} sparse")
        scale = Scale.from_config(cfg, n_train=int(result.scalars.get("n_train", 0)), seeds=len(seeds), note=note)
    return Verdict("Lottery tickets vs example-tied dropout", status, summary, measured, REFERENCE, crit,
                   scale=scale, kind="hypothesis", looks=looks)


def _step_outcome(criteria: list[Criterion]) -> str:
    """A step made of two criteria, already settled in the whole hypothesis: holds only if both hold."""
    outs = [c.outcome for c in criteria]
    for o in (CONTRADICTS, FAILS, UNTESTED, UNDECIDED):
        if o in outs:
            return o
    return HOLDS


def setting(cfg, result) -> str:
    """One sentence: what was trained, on what, how it was pruned."""
    sc = result.scalars
    steps = int(sc["total_steps"])
    return (f"{model_title(cfg.model)} (width {cfg.width}) on {sc['n_train']:,} {dataset_title(cfg.dataset)} training "
            f"images with {cfg.noise_rate:.0%} label noise ({sc['n_noisy']:,} mislabeled), {cfg.epochs} epochs of batch "
            f"{cfg.batch_size} per training; {cfg.rounds} pruning round{'s' if cfg.rounds != 1 else ''} of "
            f"{cfg.prune_rate:.0%} ({cfg.scope}) to {Measured(final_sparsity(cfg.values), 'percent')} sparse; "
            f"rewinding to iteration k = {cfg.rewind_step} of {steps:,} ({Measured(cfg.rewind_step / steps, 'percent')}"
            f" of training); {len(sc['seeds'])} seed{'s' if len(sc['seeds']) != 1 else ''}")


def caveats(cfg, result) -> str:
    """The chapter's caveats, written from the configuration: every remaining deviation from the papers."""
    sc = result.scalars
    items = []
    if cfg.profile != "paper":
        items.append(f"This is the `{cfg.profile}` profile: {model_title(cfg.model)} of width "
                     f"{cfg.width} on {sc['n_train']:,} {dataset_title(cfg.dataset)} images, not ResNet-9 (width 64) / ResNet-20 on "
                     "CIFAR-10. Lottery tickets and example-tied dropout were reported at that larger scale.")
    if cfg.prune_rate != 0.2:
        items.append(f"Pruning removes {cfg.prune_rate:.0%} of the remaining weights a round for {cfg.rounds} round(s) "
                     f"({Measured(final_sparsity(cfg.values), 'percent')} sparse); open_lth removes 20% a round "
                     "(11 rounds for 91.4%). Larger steps find weaker tickets (one-shot pruning does worse than "
                     "iterative pruning in Frankle & Carbin), so a ticket-vs-random difference may be smaller here "
                     "than at 20% a round.")
    if cfg.scope != "global":
        items.append("Pruning is per layer (Frankle & Carbin's small networks); open_lth's default is global.")
    where = {"resnet9": "after every conv block and both residual blocks of ResNet-9 (six sites)",
             "mlp": "after the MLP's hidden layer", "smallcnn": "after each conv block of the small CNN"}
    items.append(f"Example-tied dropout sits {where.get(cfg.model, 'at the model sites')}. The authors' public code is "
                 "ambiguous about which placement produced their Table 3: this placement is our reading.")
    if cfg.model == "resnet9":
        gen = [max(1, int(cfg.p_gen * c)) for c in (cfg.width, 2 * cfg.width, 4 * cfg.width)]
        items.append(f"At width {cfg.width} a site has only {gen[0]}–{gen[2]} generalization channels "
                     f"(p_gen = {cfg.p_gen}), so the example-tied network with its memorization channels dropped is "
                     "much weaker than at width 64; its channels are still what steps 1 and 2 measure.")
    items.append("The example-tied chain's last mask is retrained as an ordinary network (no example-tied dropout), "
                 "so any channel may memorize again; with example-tied dropout the question would be answered by "
                 "construction.")
    items.append(f"Mislabeled examples get a uniformly drawn *wrong* class ({cfg.noise_rate:.0%} of the labels).")
    items.append("Each network is evaluated once, at the end of its training (no learning curves).")
    n = len(sc["seeds"])
    if n < 2:
        items.append("One seed gives no interval, so no step is decided: run with `-p seeds=3` or more.")
    else:
        from scipy import stats

        k = float(stats.t.ppf(0.975, n - 1)) / n ** 0.5
        items.append(f"Intervals are 95% t-intervals over {n} seeds: a step is decided only when its mean effect is "
                     f"more than about {k:.1f} seed standard deviations from the threshold.")
    return "\n".join(f"- {i}" for i in items)


def deciding(v: Verdict) -> list[tuple[str, str, str]]:
    """The verdict box's rows: the numbers that decide the steps, beside what the talk predicts."""
    m = v.measured
    return [("mean distance moved from initialisation, memorization / generalization channels",
             "below 1 (hypothesised)",
             str(m["moved_ratio"])),
            ("share of pruned weights in memorization channels / chance", "above 1 (hypothesised)",
             str(m["enrichment"])),
            ("mislabeled accuracy, random mask − example-tied ticket", "above 0 (hypothesised)",
             str(m["etd_noisy_gap"])),
            ("mislabeled accuracy, random mask − ordinary ticket", "above 0 (hypothesised)",
             str(m["ord_noisy_gap"]))]

