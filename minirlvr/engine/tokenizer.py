"""A small byte-level BPE trained on given texts, wrapped as a transformers tokenizer with a chat template: the
miniature's tokenizer (~1k tokens over its world's prompts and responses) and the `tiny` preset's.

Trained with the `tokenizers` library (in batches: one text at a
time is much slower). Byte-level, so any text round-trips, including words the world never wrote. The pad
token is distinct from EOS: EOS (`<|im_end|>`) is a trained action of the policy, padding never is.
This file does not train models and knows nothing of constraints.
"""

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS = "<|pad|>", "<|im_start|>", "<|im_end|>"
# ChatML-like: each turn is <|im_start|>role\ncontent<|im_end|>\n; generation starts after "assistant\n".
CHAT_TEMPLATE = (
    "{% for m in messages %}" + BOS + "{{ m['role'] }}\n{{ m['content'] }}" + EOS + "\n{% endfor %}"
    "{% if add_generation_prompt %}" + BOS + "assistant\n{% endif %}"
)


def train_tokenizer(texts, vocab_size=1024, batch_size=1000):
    """A PreTrainedTokenizerFast with a byte-level BPE of `vocab_size` tokens trained on `texts`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    batches = (texts[i:i + batch_size] for i in range(0, len(texts), batch_size))
    tok.train_from_iterator(batches, trainer=trainer, length=len(texts))
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=None)
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def chat_prompt(tokenizer, prompt):
    """The text the policy is conditioned on for a user prompt (what the engine's chat template produces)."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
