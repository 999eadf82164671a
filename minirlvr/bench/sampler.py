"""`python -m minirlvr.bench sampler`: the own sampler's tokens/s against `model.generate`, same run, same model.

Both produce exactly B*G*L new tokens (no EOS stop) from the same left-padded prompts, by sampling at
temperature 1 (no top-k/top-p) and greedily. `model.generate` gets `num_return_sequences=G`, the usual way
to draw G samples per prompt. The model is a random Qwen2 of the given shape unless --model is a folder.
Reported: best-of-`repeats` wall time per method (the two measured alternately), tokens/s, and the ratio own / HF.

A third case, "most rows end early", measures the own sampler's batch compaction: EOS ids are chosen so that a
share of the rows (--early_share) stops within its first 8 tokens while the rest run all L tokens; the same
sampled generation runs with compaction (stopped rows leave the decode batch) and without (compact=False), and
tokens/s counts generated (non-pad) tokens. What compaction cannot remove bounds the ratio: a step's fixed cost,
and sampling, which still draws V random numbers for each of the N rows so that the seeded stream stays the same.
This measures generation only; it does not measure sample quality.
"""

import argparse
import json

import torch

from minirlvr.bench.measure import timed
from minirlvr.engine.sampler import generate, left_pad


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench sampler", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="", help="model folder (default: a random Qwen2 of the shape below)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--batch", type=int, default=4, help="B prompts")
    p.add_argument("--group", type=int, default=4, help="G samples per prompt")
    p.add_argument("--prompt_len", type=int, default=64, help="longest prompt P (others are shorter: left padding)")
    p.add_argument("--new_tokens", type=int, default=64, help="L new tokens per sample")
    p.add_argument("--early_share", type=float, default=0.75, help="share of rows that end early (compaction case)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    p.add_argument("--out", default="", help="also append the result as one JSON line to this file")
    return p.parse_args(argv)


def best_times(fn_a, fn_b, repeats, device):
    """Best-of-`repeats` wall time of each, measured alternately so that a busy machine slows both alike."""
    fn_a(), fn_b()  # warm-up (allocator, kernels)
    a, b = [], []
    for _ in range(repeats):
        a.append(timed(fn_a, device))
        b.append(timed(fn_b, device))
    return min(a), min(b)


def early_eos_ids(model, prompts, G, L, share, seed, device):
    """EOS ids that end about `share` of the rows within 8 tokens and no other row. A seeded run without EOS ids
    draws the tokens; a chosen row's token at a random step < 8 becomes an EOS id unless a long row ever draws it.
    With EOS ids the same seed draws the same tokens until a row stops (the RNG stream does not depend on them)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    tokens = generate(model, prompts, G, L, eos_ids=[], pad_id=0, temperature=1.0, generator=gen).tokens.cpu()
    order = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(seed))  # (N,)
    early, long = order[:round(share * len(tokens))], order[round(share * len(tokens)):]
    steps = torch.randint(0, min(8, L), (len(early),), generator=torch.Generator().manual_seed(seed))
    return sorted(set(tokens[early, steps].tolist()) - set(tokens[long].flatten().tolist()))


def main(argv):
    args = parse(argv)
    from minirlvr.engine.model import pick_device, tiny_model

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.model:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16 if device.type == "cuda"
                                                     else torch.float32).to(device).eval()
        vocab = model.config.vocab_size
    else:
        model = tiny_model(vocab_size=args.vocab, hidden_size=args.hidden, num_layers=args.layers,
                           num_heads=max(1, args.hidden // 64), num_kv_heads=max(1, args.hidden // 128),
                           max_positions=args.prompt_len + args.new_tokens + 8).to(device)
        vocab = args.vocab
    model.generation_config.eos_token_id = None
    B, G, L = args.batch, args.group, args.new_tokens
    g = torch.Generator().manual_seed(0)
    lengths = [max(1, args.prompt_len - 7 * i) for i in range(B)]
    prompts = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]
    ids, mask, _ = left_pad(prompts, 0, device)
    gen = torch.Generator(device=device).manual_seed(0)

    def own(temperature):
        out = generate(model, prompts, G, L, eos_ids=[], pad_id=0, temperature=temperature, generator=gen)
        assert out.tokens.shape == (B * G, L)

    def hf(sample):
        # greedy generate refuses num_return_sequences > 1, so the prompts are repeated (what it does inside)
        rep = 1 if sample else G
        # sampling flags only when sampling: greedy generate warns about them, and the warning lands in the table
        flags = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0) if sample else dict(do_sample=False)
        out = model.generate(input_ids=ids.repeat_interleave(rep, 0), attention_mask=mask.repeat_interleave(rep, 0),
                             max_new_tokens=L, min_new_tokens=L, num_return_sequences=G // rep, pad_token_id=0,
                             eos_token_id=None, **flags)
        assert out.shape == (B * G, ids.shape[1] + L)

    n_tok = B * G * L
    print(f"sampler benchmark: device {device}, threads {torch.get_num_threads()}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, B={B} G={G} P<={args.prompt_len} "
          f"L={L}, best of {args.repeats}")
    result = {"device": str(device), "B": B, "G": G, "P": args.prompt_len, "L": L}
    with torch.no_grad():
        for mode, temperature, sample in (("sample", 1.0, True), ("greedy", 0.0, False)):
            t_own, t_hf = best_times(lambda: own(temperature), lambda: hf(sample), args.repeats, device)
            result[mode] = {"own_tok_s": n_tok / t_own, "hf_tok_s": n_tok / t_hf, "ratio": t_hf / t_own}
            print(f"  {mode:6s}  own {n_tok / t_own:9.0f} tok/s   model.generate {n_tok / t_hf:9.0f} tok/s   "
                  f"ratio {t_hf / t_own:.2f}x")
        eos = early_eos_ids(model, prompts, G, L, args.early_share, 1, device)
        lengths = []

        def own_early(compact):
            out = generate(model, prompts, G, L, eos_ids=eos, pad_id=0, temperature=1.0, compact=compact,
                           generator=torch.Generator(device=device).manual_seed(1))
            lengths.append(out.mask.sum(1))  # (N,)

        t_compact, t_full = best_times(lambda: own_early(True), lambda: own_early(False), args.repeats, device)
        length = lengths[0]
        assert all(torch.equal(x, length) for x in lengths)
        n_gen = int(length.sum())
        ended = (length <= 8).float().mean().item()
        result["early_end"] = {"compact_tok_s": n_gen / t_compact, "full_tok_s": n_gen / t_full,
                               "ratio": t_full / t_compact, "ended_early": ended, "tokens": n_gen}
        print(f"  most rows end early ({ended:.0%} of rows within 8 tokens, {n_gen} of {n_tok} tokens): compaction "
              f"{n_gen / t_compact:9.0f} tok/s   none {n_gen / t_full:9.0f} tok/s   ratio {t_full / t_compact:.2f}x")
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
    return result
