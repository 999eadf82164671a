"""Load the policy: a Hugging Face causal LM, optionally 4-bit NF4, with LoRA adapters; and tiny models for tests.

The reference policy is the same model with its adapter switched off (`with model.disable_adapter():`), so
the frozen weights exist once. The training forward stops at the final hidden states (`final_hidden`) and
hands them with the LM head weight to `minirlvr.kernels.token_logprobs`: no (N, L, V) logits in training; rows that
share a prompt run it once (`shared_prefix_hidden`).
This file does not train, sample or know about rewards.
"""

import glob
import json
import logging
import os

import torch

from minirlvr.engine.sampler import cache_arg, positions

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.pt", "*.pth")


def _not_kernels_missing(record):
    """False only for bitsandbytes' warning, logged when it is imported (peft imports it) on a CPU with AVX512-BF16,
    that Hugging Face's optional `kernels` package is not installed: it then uses its own CPU kernel, as the kit
    expects (README, "bitsandbytes and `kernels`"). Any other failure to load that kernel is still shown."""
    exc = record.args[0] if isinstance(record.args, tuple) and record.args else None
    return not (str(record.msg).startswith("Failed to load CPU gemm_4bit_forward from kernels-community")
                and isinstance(exc, ModuleNotFoundError) and exc.name == "kernels")


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_not_kernels_missing)


class ModelError(ValueError):
    """A model path or checkpoint that cannot be used; the message names it."""


def pick_device(device="auto"):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ModelError(f"device {device!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ModelError(f"device {device!r}: {why}; use --device cpu (or auto)")
    return chosen


def _check_weights(path):
    if os.path.isdir(path):
        if not any(glob.glob(os.path.join(path, p)) for p in WEIGHT_PATTERNS):
            raise ModelError(f"model folder {path!r} has no weights (expected one of {', '.join(WEIGHT_PATTERNS)})")
        if not os.path.exists(os.path.join(path, "config.json")):
            raise ModelError(f"model folder {path!r} has no config.json")
    elif os.path.exists(path) or path.startswith((".", "/", "~")):
        raise ModelError(f"model path {path!r} is not a folder with a Hugging Face model")


def load_tokenizer(path):
    """AutoTokenizer, except for a folder whose tokenizer declares itself a plain `tokenizers` one (e.g.
    word_tokenizer): transformers 5 would otherwise pick the model type's tokenizer class (Qwen2Tokenizer)
    and silently encode words to nothing."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    config = os.path.join(path, "tokenizer_config.json")
    if os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            declared = json.load(f).get("tokenizer_class")
        if declared in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def load_base(path, load_in_4bit=False, device="auto", trainable=False):
    """(model, tokenizer) of a plain HF causal LM folder (or hub id), 4-bit NF4 optional, on `device`.

    A GPU gets bf16 weights for a frozen base; `trainable=True` (full fine-tuning) and the CPU keep fp32 (AdamW on
    bf16 weights loses small updates). Errors name the path."""
    from transformers import AutoModelForCausalLM

    if not path:
        raise ModelError("config key 'model' is empty: give a local folder or a hub id (--model=...)")
    _check_weights(path)
    device = pick_device(device)
    on_gpu = device.type == "cuda"
    kwargs = nf4_kwargs(device) if load_in_4bit else {}
    kwargs["dtype"] = torch.bfloat16 if on_gpu and not trainable else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        tokenizer = load_tokenizer(path)
    except OSError as e:
        raise ModelError(f"cannot load model {path!r}: {e}") from None
    if not load_in_4bit:
        model.to(device)
    elif not on_gpu:
        # bitsandbytes repacks CPU 4-bit weights for AVX512-BF16 inference the first time a layer runs in eval
        # mode; that packed path breaks autograd (in-place bias add on its output) and computes differently
        # from the training path. Sampling and training must share one path, so the repacking is switched off.
        for module in model.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
    return model, tokenizer


def nf4_kwargs(device):
    """from_pretrained's arguments for the kit's 4-bit base on `device`: NF4 with double quantization, computing in
    bf16 on a GPU and fp32 on a CPU. lm_head stays unquantized (bitsandbytes skips the output layer), so
    token_logprobs reads it directly."""
    from transformers import BitsAndBytesConfig

    on_gpu = device.type == "cuda"
    return {"quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16 if on_gpu else torch.float32),
            "device_map": {"": device.index or 0} if on_gpu else {"": "cpu"}}


def load_model(cfg):
    """(model, tokenizer) from cfg.model with cfg's 4-bit / LoRA / checkpointing choices, on cfg.device."""
    model, tokenizer = load_base(cfg.model, cfg.load_in_4bit, cfg.device, trainable=not cfg.use_lora)
    return prepare(model, cfg), tokenizer


def load_for_inference(path, adapter=None, load_in_4bit=False, device="auto"):
    """(model, tokenizer) for sampling: the base at `path`, plus a peft LoRA adapter folder if given (the folder
    `python run.py train` writes). The tokenizer comes from the adapter folder when it holds one (train saves it
    there), else from the base. An adapter made for another base is an error naming both folders."""
    if adapter is not None:
        if not os.path.isfile(os.path.join(adapter, "adapter_config.json")):
            raise ModelError(f"adapter folder {adapter!r} has no adapter_config.json (expected a peft adapter "
                             f"folder, e.g. runs/grpo/adapter written by `python run.py train`)")
    model, tokenizer = load_base(path, load_in_4bit, device)
    if adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter)
        except (RuntimeError, ValueError, KeyError) as e:  # size mismatch, unknown target modules
            raise ModelError(f"adapter {adapter!r} does not fit the base model {path!r} (trained on another "
                             f"base?): {str(e).splitlines()[0][:300]}") from None
        if os.path.isfile(os.path.join(adapter, "tokenizer_config.json")):
            tokenizer = load_tokenizer(adapter)
    return model.eval(), tokenizer


def prepare(model, cfg):
    """Freeze the base, add LoRA (or unfreeze everything), enable gradient checkpointing."""
    if cfg.gradient_checkpointing:
        # non-reentrant checkpointing works with frozen embeddings (no need for inputs that require grad)
        if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if not cfg.use_lora:
        if getattr(model, "is_loaded_in_4bit", False):
            raise ModelError("full fine-tuning (use_lora=false) needs load_in_4bit=false: 4-bit weights are frozen")
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    for p in model.parameters():
        p.requires_grad_(False)
    targets = cfg.lora_targets if cfg.lora_targets == "all-linear" else [t for t in cfg.lora_targets.split(",") if t]
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    head = base_model(peft_model).get_output_embeddings()
    if hasattr(head, "lora_A") or hasattr(head, "modules_to_save"):
        # token_logprobs reads the head's (V, D) weight directly; an adapter on the head would be used by the
        # sampler and ignored by the loss (and get no gradient)
        raise ModelError(f"lora_targets={cfg.lora_targets!r} puts an adapter on the LM head, which the fused log-prob "
                         f"path does not support: leave lm_head out of lora_targets (\"all-linear\" does), or train "
                         f"the head with use_lora=false")
    return peft_model


def base_model(model):
    """The underlying *ForCausalLM (LoRA layers stay injected in it; the peft wrapper only routes calls)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def lm_head_weight(model):
    """(V, D) weight of the output layer. bitsandbytes leaves it unquantized; dequantize if someone did not."""
    head = base_model(model).get_output_embeddings()
    w = head.weight
    if w.__class__.__name__ == "Params4bit":
        import bitsandbytes.functional as bnbf

        w = bnbf.dequantize_4bit(w.data, w.quant_state)
    return w


def final_hidden(model, input_ids, attention_mask, position_ids):
    """Final hidden states (after the last norm) of the decoder body: (N, T, D). No LM head, no logits."""
    body = base_model(model).get_decoder()
    out = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    return out.last_hidden_state


def shares_prefix(model):
    """Whether `shared_prefix_hidden` can run on `model` now. Not under gradient checkpointing while gradients are
    taken: transformers then drops the cache (a checkpointed layer would write it a second time on the backward
    replay), so the completion would see no prompt. Not for a body that takes no cache argument."""
    body = base_model(model).get_decoder()
    if cache_arg(type(body)) is None:
        return False
    checkpointing = any(getattr(m, "gradient_checkpointing", False) for m in body.modules())
    return not (checkpointing and body.training and torch.is_grad_enabled())


def shared_prefix_hidden(model, prompt_ids, prompt_mask, prompt_of, tokens, mask):
    """Final hidden states (n, L, D) that predict `tokens` (n, L) (position t predicts token t), like
    final_hidden(...)[:, P - 1:-1] on the rows' full sequences, but with each distinct prompt run once.

    prompt_ids, prompt_mask (b, P): the distinct prompts, left padded; prompt_of (n,): each row's prompt.
    A shared-prefix forward in the manner of Prefix Grouper (arXiv 2506.05433): a prompt's hidden states and KV do
    not depend on what follows it, so the b prompts run once into a DynamicCache whose rows are then gathered for
    the n rows, and only the completions run, against that cache. The gather is differentiable: the backward sums
    the n rows' gradients into their prompt's, which is what n separate copies of the prompt would have received in
    total. Token positions b*P + n*(L-1) instead of n*(P+L): the prompt's last hidden state predicts the first
    completion token, and the last completion token predicts nothing, so it is not run.
    With LoRA dropout in training mode, a group's rows share their prompt's dropout mask (n copies would each draw
    one): every row still sees a fresh mask's forward, so the expected gradient is unchanged; only the rows' noise is
    correlated over the prompt. Call only where shares_prefix(model) holds; None if the body left the cache empty
    (the caller then runs full sequences)."""
    from transformers import DynamicCache

    body = base_model(model).get_decoder()
    arg = cache_arg(type(body))
    cache = DynamicCache()
    P, L = prompt_ids.shape[1], tokens.shape[1]
    out = body(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions(prompt_mask), use_cache=True,
               **{arg: cache})
    first = out.last_hidden_state[prompt_of, -1:]  # (n, 1, D): the prompt's last position predicts token 0
    if L == 1:
        return first
    if cache.get_seq_length() != P:  # a body that ignored use_cache: the completions would not see their prompts
        return None
    cache.batch_select_indices(prompt_of)  # (b, H, P, d) -> (n, H, P, d) in every layer, differentiable
    attn = torch.cat([prompt_mask[prompt_of], mask.long()], 1)  # (n, P+L)
    rest = body(input_ids=tokens[:, :-1], attention_mask=attn[:, :-1], position_ids=positions(attn)[:, P:-1],
                use_cache=True, **{arg: cache}).last_hidden_state  # (n, L-1, D)
    return torch.cat([first, rest], 1)  # (n, L, D)


def reference_mode(model, ref_model=None):
    """Context manager under which `model` (or `ref_model` for full fine-tuning) is the reference policy."""
    import contextlib

    if hasattr(model, "disable_adapter"):
        return model.disable_adapter()
    if ref_model is None:
        raise ModelError("full fine-tuning with beta > 0 needs a frozen reference copy (ref_model)")
    return contextlib.nullcontext()


def trainable_state(model):
    """name -> tensor of the trainable parameters (the LoRA adapter, or everything in full fine-tuning)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state, where):
    """Copy a trainable_state into `model`; a different model or LoRA shape is an error naming the tensor."""
    mine = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing, extra = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    if missing or extra:
        raise ModelError(f"checkpoint {where} was written for a different model or LoRA setup: "
                         f"{len(missing)} trainable tensors missing (e.g. {missing[:1]}), "
                         f"{len(extra)} unexpected (e.g. {extra[:1]})")
    for n, p in mine.items():
        if p.shape != state[n].shape:
            raise ModelError(f"checkpoint {where} was written for a different model or LoRA shape: "
                             f"{n} has shape {tuple(state[n].shape)} there, {tuple(p.shape)} here")
    with torch.no_grad():
        for n, p in mine.items():
            p.copy_(state[n])


def tiny_model(vocab_size=64, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, max_positions=256,
               seed=0, eos_token_id=None, pad_token_id=None, init_std=0.02):
    """A random Qwen2ForCausalLM with 2 layers (by default) for tests and the CPU experiment. fp32, CPU.

    With the usual init_std=0.02 a 64-wide model's logits stay within about +-1.3 and no LoRA on the body can
    make one token likely (the head and final norm are frozen); tests that must learn use init_std ~0.1."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads,
                         num_key_value_heads=num_kv_heads, max_position_embeddings=max_positions,
                         tie_word_embeddings=False, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                         initializer_range=init_std)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config).eval()


def word_tokenizer(words, specials=("<pad>", "<eos>", "<unk>")):
    """A whitespace word-level PreTrainedTokenizerFast over `words` (no download); pad and eos are distinct."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(list(specials) + [w for w in words if w not in specials])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
