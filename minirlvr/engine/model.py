"""Load the policy: a Hugging Face causal LM, optionally 4-bit NF4, with LoRA adapters; and tiny models for tests.

The reference policy is the same model with its adapter switched off (`with model.disable_adapter():`), so
the frozen weights exist once. The training forward stops at the final hidden states (`final_hidden`) and
hands them with the LM head weight to `minirlvr.kernels.token_logprobs`: no (N, L, V) logits in training.
This file does not train, sample or know about rewards.
"""

import glob
import json
import logging
import os

import torch

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


# Measured on the kit's 2-core CI machine while other jobs shared it (2026-12-06, `bench step --shape small`, 3
# GRPO steps, runs alternated 1, 2, 1, 2 threads): 15.0-17.1 s per step with 1 thread, 103.9-137.1 s with 2; an
# eval there took 17 s with 1 thread and 159 s with torch's default (issue #25). Torch's threads spin while they
# wait for a core that another process holds. Larger machines were not measured: they keep torch's default.
SMALL_MACHINE_CORES = 2
THREADS_HELP = (f"torch CPU threads (default: 1 on a machine of <= {SMALL_MACHINE_CORES} cores, where a GRPO step "
                f"measured 6-8x faster than with 2 under load; else torch's, one per core)")


def cpu_threads(n=None):
    """Set torch's CPU threads for this process: n, or (n 0 or None) the kit's default for this machine (1 thread
    on a machine of <= SMALL_MACHINE_CORES cores, torch's own elsewhere). Every command's --threads goes through
    here. Returns the threads now in use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n = n or (1 if cores <= SMALL_MACHINE_CORES else 0)
    if n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


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
