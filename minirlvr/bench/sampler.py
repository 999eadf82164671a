"""`python -m minirlvr.bench sampler`: the own sampler's fast path (static cache, compiled on CUDA) against its eager
path and `model.generate`, tokens/s and ratios from one run, same model.

Every method produces exactly B*G*L new tokens (no EOS stop) from the same left-padded prompts, by sampling at
temperature 1 (no top-k/top-p) and greedily. `model.generate` gets `num_return_sequences=G`, the usual way to draw
G samples per prompt. --paths names the own paths measured ("static", "compiled", "eager"; the first is the one the
ratios put on top, the last the eager reference); a compiled path is compiled in the warm-up, outside the timing.
The model is a random Qwen2 of the given size, of a named shape (--shape, random weights, --4bit: NF4 + bf16
compute), or a folder (--model). Reported: best-of-`repeats` wall time per method (measured in turns, so that a
busy machine slows all alike), tokens/s, ratios, and on CUDA each method's peak allocator memory above the model.

A last case, "most rows end early": EOS ids are chosen so that a share of the rows (--early_share) stops within its
first 8 tokens while the rest run all L tokens; the fast path with compaction (stopped rows leave the decode batch,
and only live rows are sampled), the fast path without, and the eager path with compaction; tokens/s counts
generated (non-pad) tokens. This measures generation only; it does not measure sample quality.
"""

import argparse

import torch

from minirlvr.bench.measure import sync, timed
from minirlvr.data import to_json
from minirlvr.engine.sampler import generate, left_pad


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench sampler", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="", help="model folder (default: a random Qwen2 of the shape below)")
    p.add_argument("--shape", default="", help="a named shape of minirlvr/configs (e.g. qwen2.5-0.5b): random weights")
    p.add_argument("--4bit", dest="four_bit", action="store_true", help="with --shape or --model: NF4 weights")
    p.add_argument("--workdir", default="", help="where --shape's random model folder is written (default: temp)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--batch", type=int, default=4, help="B prompts")
    p.add_argument("--group", type=int, default=4, help="G samples per prompt")
    p.add_argument("--prompt_len", type=int, default=64, help="longest prompt P (others are shorter: left padding)")
    p.add_argument("--new_tokens", type=int, default=64, help="L new tokens per sample")
    p.add_argument("--early_share", type=float, default=0.75, help="share of rows that end early (last case, "
                   "approximately; 0: skip that case)")
    p.add_argument("--modes", default="sample,greedy", help="sample and/or greedy, comma-separated")
    p.add_argument("--paths", default="", help="own paths, comma-separated (default: compiled,eager on CUDA, "
                   "static,eager elsewhere: compiling takes minutes on a small CPU)")
    p.add_argument("--no_hf", action="store_true", help="skip model.generate")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    p.add_argument("--out", default="", help="also append the result as one JSON line to this file")
    return p.parse_args(argv)


def best_times(fns, repeats, device):
    """{name: (best seconds, peak bytes above the start)} of each fn, measured in turns after one warm-up each."""
    peak = {}
    for name, fn in fns.items():  # warm-up (allocator, kernels, compilation); the peak on CUDA
        if device.type == "cuda":
            sync(device)
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        fn()
        peak[name] = torch.cuda.max_memory_allocated() - base if device.type == "cuda" else 0
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return {name: (min(times[name]), peak[name]) for name in fns}


def early_eos_ids(model, prompts, G, L, share, seed, device, rounds=8):
    """EOS ids that end about `share` of the rows within 8 tokens and few others. A chosen row's token at a random
    step < 8 of a seeded run becomes an EOS id unless a long row draws it in that run. Only live rows are sampled,
    so once a row stops the others draw other tokens: the run is repeated with the ids so far, adding ids for the
    chosen rows that did not stop, up to `rounds` times (the benchmark reports the share it measures)."""
    order = torch.randperm(len(prompts) * G, generator=torch.Generator().manual_seed(seed))  # (N,)
    early, long = order[:round(share * len(order))], order[round(share * len(order)):]
    steps = torch.randint(0, min(8, L), (len(order),), generator=torch.Generator().manual_seed(seed))  # (N,)
    eos = set()
    for _ in range(rounds):
        out = generate(model, prompts, G, L, eos_ids=sorted(eos), pad_id=0, temperature=1.0,
                       generator=torch.Generator(device=device).manual_seed(seed))
        tokens, length = out.tokens.cpu(), out.mask.sum(1).cpu()  # (N, L), (N,)
        missing = [int(r) for r in early if length[r] > 8]
        if not missing:
            break
        eos |= {int(tokens[r, steps[r]]) for r in missing} - set(tokens[long].flatten().tolist())
    return sorted(eos)


def load(args, device):
    from minirlvr.engine.model import load_base, tiny_model

    if args.shape or args.model:
        folder = args.model
        if args.shape:
            import tempfile

            from minirlvr.bench.step import build_model_folder

            folder = build_model_folder(args.shape, args.workdir or tempfile.mkdtemp(prefix="minirlvr-sampler-"))
        model, _ = load_base(folder, args.four_bit, str(device))
        return model.eval(), model.config.vocab_size
    model = tiny_model(vocab_size=args.vocab, hidden_size=args.hidden, num_layers=args.layers,
                       num_heads=max(1, args.hidden // 64), num_kv_heads=max(1, args.hidden // 128),
                       max_positions=args.prompt_len + args.new_tokens + 8).to(device)
    return model, args.vocab


def main(argv):
    args = parse(argv)
    from minirlvr.engine.model import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model, vocab = load(args, device)
    model.generation_config.eos_token_id = None
    paths = (args.paths or ("compiled,eager" if device.type == "cuda" else "static,eager")).split(",")
    fast, ref = paths[0], paths[-1]
    B, G, L = args.batch, args.group, args.new_tokens
    g = torch.Generator().manual_seed(0)
    lengths = [max(1, args.prompt_len - 7 * i) for i in range(B)]
    prompts = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]
    ids, mask, _ = left_pad(prompts, 0, device)
    gen = torch.Generator(device=device).manual_seed(0)

    def own(temperature, path):
        out = generate(model, prompts, G, L, eos_ids=[], pad_id=0, temperature=temperature, generator=gen, path=path)
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
    gib = 2 ** 30
    print(f"sampler benchmark: device {device}, threads {torch.get_num_threads()}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params{' (4-bit)' if args.four_bit else ''}, "
          f"B={B} G={G} P<={args.prompt_len} L={L}, best of {args.repeats}; paths {', '.join(paths)}")
    result = {"device": str(device), "shape": args.shape or f"h{args.hidden}x{args.layers}", "four_bit": args.four_bit,
              "B": B, "G": G, "P": args.prompt_len, "L": L}
    with torch.no_grad():
        for mode in args.modes.split(","):
            temperature, sample = {"sample": (1.0, True), "greedy": (0.0, False)}[mode]
            fns = {p: (lambda p=p: own(temperature, p)) for p in paths}
            if not args.no_hf:
                fns["generate"] = lambda: hf(sample)
            res = best_times(fns, args.repeats, device)
            row = {f"{k}_tok_s": n_tok / t for k, (t, _) in res.items()}
            row[f"{fast}_vs_{ref}"] = res[ref][0] / res[fast][0]
            if not args.no_hf:
                row[f"{fast}_vs_generate"] = res["generate"][0] / res[fast][0]
            if device.type == "cuda":
                row.update({f"{k}_peak_gib": m / gib for k, (_, m) in res.items()})
            result[mode] = row
            cells = "   ".join(f"{k} {n_tok / t:8.0f} tok/s" + (f" {m / gib:.2f} GiB" if device.type == "cuda" else "")
                               for k, (t, m) in res.items())
            ratios = "   ".join(f"{k.replace('_vs_', ' / ')} {v:.2f}x" for k, v in row.items() if "_vs_" in k)
            print(f"  {mode:6s}  {cells}   |  {ratios}")
        if args.early_share <= 0:
            return finish(args, result)
        eos = early_eos_ids(model, prompts, G, L, args.early_share, 1, device)
        lengths = {}

        def own_early(path, compact):
            out = generate(model, prompts, G, L, eos_ids=eos, pad_id=0, temperature=1.0, compact=compact, path=path,
                           generator=torch.Generator(device=device).manual_seed(1))
            lengths[(path, compact)] = out.mask.sum(1)  # (N,)

        fns = {f"{fast}": lambda: own_early(fast, True), f"{fast} no compaction": lambda: own_early(fast, False),
               f"{ref}": lambda: own_early(ref, True)}
        res = best_times(fns, args.repeats, device)
        length = lengths[(fast, True)]
        assert torch.equal(lengths[(fast, False)], length)  # compaction changes nothing
        n_gen = int(length.sum())
        ended = (length <= 8).float().mean().item()
        t_fast = res[fast][0]
        result["early_end"] = {"ended_early": ended, "tokens": n_gen, **{f"{k}_tok_s": n_gen / t for k, (t, _) in
                                                                         res.items()},
                               "compaction": res[f"{fast} no compaction"][0] / t_fast, f"vs_{ref}": res[ref][0] / t_fast}
        print(f"  most rows end early ({ended:.0%} of rows within 8 tokens, {n_gen} of {n_tok} tokens): "
              + "   ".join(f"{k} {n_gen / t:8.0f} tok/s" for k, (t, _) in res.items())
              + f"   |  compaction {result['early_end']['compaction']:.2f}x   {fast} / {ref} "
                f"{result['early_end'][f'vs_{ref}']:.2f}x")
    return finish(args, result)


def finish(args, result):
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(to_json(result) + "\n")
    return result
