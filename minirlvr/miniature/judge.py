"""A learned judge for soft constraints: a tiny bag-of-tokens classifier, trained on judged examples of the world.

    judge = build_or_load(JudgeConfig(), sft_path, tokenizer)
    judge.yes(["Use a warm, positive tone."], ["Tea is lovely at home."])   # -> [True]
    judge.check(items)                                                      # the judge interface (minirlvr/judge.py)

It reads only text: the constraint's English and the response, tokenized with the world's BPE. Each is
mean-pooled over token embeddings (fastText-style), and a small MLP on [c, r, c*r] says yes/no. The labels come
from the world's hidden rules on grammar-written responses, so the judge is trained on the distribution the
SFT policy starts from; where the policy drifts away from it (e.g. long responses that dilute a mean-pooled
"bad" word) the judge's mistakes are its own, nothing is scripted. `precision_recall` measures how well it
catches violations against the world's truth; the miniature's evaluation reports it on the SFT policy's samples.
This file does not compute GRPO rewards (the miniature's parts combine judge and verifiers).
"""

import dataclasses
import hashlib
import json
import os
import random
from dataclasses import dataclass

import torch
import torch.nn as nn

from minirlvr.reward.judge import Verdicts, precision_recall
from minirlvr.miniature import world


@dataclass(frozen=True)
class JudgeConfig:
    n_records: int = 3000  # world records with soft constraints; each soft constraint is one example
    epochs: int = 6
    batch_size: int = 64
    dim: int = 32
    hidden: int = 64
    lr: float = 5e-3
    seed: int = 0


class BagJudge(nn.Module):
    def __init__(self, vocab_size, dim, hidden):
        super().__init__()
        self.c = nn.EmbeddingBag(vocab_size, dim, mode="mean")
        self.r = nn.EmbeddingBag(vocab_size, dim, mode="mean")
        self.mlp = nn.Sequential(nn.Linear(3 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, c_ids, c_off, r_ids, r_off):
        c = self.c(c_ids, c_off)  # (n, D)
        r = self.r(r_ids, r_off)  # (n, D)
        return self.mlp(torch.cat([c, r, c * r], -1)).squeeze(-1)  # (n,) logit of "satisfied"


def _bags(tokenizer, texts):
    """Flat ids + offsets for nn.EmbeddingBag; an empty text becomes a single pad token."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    ids = [x or [tokenizer.pad_token_id] for x in ids]
    offsets = torch.tensor([0] + [len(x) for x in ids[:-1]]).cumsum(0)  # (n,)
    return torch.tensor([t for x in ids for t in x]), offsets


class Judge:
    def __init__(self, net, tokenizer):
        self.net, self.tokenizer = net.eval(), tokenizer

    @torch.no_grad()
    def prob(self, constraints, responses):
        if not constraints:
            return torch.zeros(0)
        return torch.sigmoid(self.net(*_bags(self.tokenizer, constraints), *_bags(self.tokenizer, responses)))

    def yes(self, constraints, responses):
        """Judged satisfaction of constraint i by response i."""
        return (self.prob(constraints, responses) > 0.5).tolist()

    def check(self, items):
        """The judge interface: one classifier batch over every (constraint, response) pair, item-major. It reads
        no prompt (the record may be None) and always answers, so every verdict is parsed."""
        flat = [(c, text) for _, text, constraints in items for c in constraints]
        yes = self.yes([c for c, _ in flat], [t for _, t in flat]) if flat else []
        ok, i = [], 0
        for _, _, constraints in items:
            ok.append(yes[i:i + len(constraints)])
            i += len(constraints)
        return Verdicts(ok=ok, parsed=[[True] * len(row) for row in ok], calls=int(bool(flat)))


def examples(n_records, seed, p_follow=0.5):
    """(constraint text, response, world truth) triples from grammar-written answers."""
    rng = random.Random(f"judge:{seed}")
    out = []
    for rec in world.sample_records("mixed", n_records, seed=10_000 + seed):
        text = world.write_response(rec, rng, p_follow=p_follow)
        for spec, label in zip(world.soft_specs_of(rec), world.truth(rec, text)["soft"]):
            out.append((world.SOFT_TEXT[spec], text, label))
    return out


def train_judge(cfg, tokenizer, log=print):
    torch.manual_seed(cfg.seed)
    data = examples(cfg.n_records, cfg.seed)
    held = examples(max(200, cfg.n_records // 5), cfg.seed + 1)
    net = BagJudge(len(tokenizer), cfg.dim, cfg.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    rng = random.Random(cfg.seed)
    for _ in range(cfg.epochs):
        rng.shuffle(data)
        for i in range(0, len(data), cfg.batch_size):
            c, r, y = zip(*data[i:i + cfg.batch_size])
            logit = net(*_bags(tokenizer, c), *_bags(tokenizer, r))  # (n,)
            loss = nn.functional.binary_cross_entropy_with_logits(logit, torch.tensor(y, dtype=torch.float32))
            opt.zero_grad()
            loss.backward()
            opt.step()
    judge = Judge(net, tokenizer)
    c, r, y = zip(*held)
    yes = judge.yes(list(c), list(r))
    p, rc = precision_recall(yes, y)
    acc = sum(a == b for a, b in zip(yes, y)) / len(y)
    stats = {"examples": len(data), "heldout_accuracy": acc, "heldout_violation_precision": p,
             "heldout_violation_recall": rc}
    log(f"judge: {len(data)} examples; on held-out grammar answers accuracy {acc:.3f}, "
        f"violation precision {p:.3f} recall {rc:.3f}")
    return judge, stats


def build_or_load(cfg, sft_path, tokenizer, log=print):
    """The judge for this config and this SFT folder's tokenizer, cached next to the SFT model."""
    key = hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(sft_path, f"judge-{key}.pt")
    if os.path.exists(path):
        state = torch.load(path, map_location="cpu", weights_only=False)
        net = BagJudge(len(tokenizer), cfg.dim, cfg.hidden)
        net.load_state_dict(state["net"])
        log(f"judge: cached at {path}")
        return Judge(net, tokenizer), state["stats"]
    judge, stats = train_judge(cfg, tokenizer, log)
    tmp = path + ".tmp"
    torch.save({"net": judge.net.state_dict(), "stats": stats, "config": dataclasses.asdict(cfg)}, tmp)
    os.replace(tmp, path)
    return judge, stats
