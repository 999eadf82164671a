"""The engine: what one GRPO step needs from a model, with no knowledge of the paper's data or rewards.

  config.py      one flat training config (TrainConfig), `--key=value` overrides over a preset's values
  model.py       load a Hugging Face causal LM (4-bit NF4 optional) with LoRA; tiny models for tests; CPU threads
  tokenizer.py   a small byte-level BPE with a chat template, trained on given texts (the miniature, `tiny`)
  sampler.py     the kit's own batched generation loop with a KV cache (B prompts x G samples)
  chat.py        text in, text out through the sampler: chat templates, prompts, decoding
  grpo.py        GRPO's math as pure functions: group-normalized advantages, the clipped loss with a k3 KL
  checkpoint.py  checkpoints that resume a run exactly; policies saved as standard folders
  malloc.py      glibc's allocator on a CPU: freed activations leave the resident set
  progress.py    progress of long loops: a tqdm bar on a terminal, plain lines (done/total, rate, ETA) without one
  machine.py     this machine: the torch threads to use on it (--threads), how fast it is (printed by every run)
  report_to.py   each logged step's metrics also to TensorBoard or Weights & Biases (`--report_to`)
"""
