"""Responses in Chinese, Japanese, Hindi, Russian and Thai, and the instructions they are checked against, for the
agreement test of Multi-IF's language branches (tests/test_multiif.py) and for the script that records the official
scorer's verdicts on them (tests/make_multiif_oracle.py). Plain Python with no imports from the kit, so the script
runs in a separate environment. Changing anything here changes FINGERPRINT: re-run the script.

The texts are a few hand-written sentences per language, then seeded compositions of them with what moves the
counts: line breaks and blank lines, ASCII and full-width sentence ends, ellipses, bullets, emoji, Latin words and
numbers, every kind of quotation mark, trailing spaces.
"""

import hashlib
import json
import random

SENTENCES = {
    "zh": ["今天天气很好，我们去公园散步吧。", "人工智能正在改变我们的生活方式！", "你知道长城有多长吗？",
           "这本书讲述了一个关于友谊和勇气的故事。", "春天来了，花儿都开了，鸟儿在树上唱歌。",
           "学习编程需要耐心和坚持．", "北京是中国的首都，也是一座历史悠久的城市。", "请使用关键词：创新、合作、未来."],
    "ja": ["今日はとても良い天気ですね。", "東京タワーに行きたいです！", "日本語を勉強するのは楽しいですか？",
           "この本は友情についての物語です。", "カタカナとひらがなを練習しましょう。"],
    "hi": ["आज मौसम बहुत अच्छा है।", "क्या आप मेरे साथ बाज़ार चलेंगे?", "भारत एक विशाल और विविधताओं से भरा देश है।",
           "मुझे किताबें पढ़ना बहुत पसंद है!", "गंगा नदी हिमालय से निकलती है और बंगाल की खाड़ी में गिरती है।",
           "विज्ञान और तकनीक ने हमारे जीवन को आसान बना दिया है।", "कृपया इस प्रश्न का उत्तर संक्षेप में दें।",
           "दिल्ली भारत की राजधानी है. यहाँ बहुत से ऐतिहासिक स्मारक हैं."],
    "ru": ["Сегодня прекрасная погода, и мы пошли гулять в парк.", "Вы когда-нибудь были в Санкт-Петербурге?",
           "Искусственный интеллект меняет нашу жизнь!",
           "Д. И. Менделеев создал периодическую таблицу химических элементов.",
           "Москва — столица России, крупнейший город страны.",
           "Т. е. нужно учитывать все факторы, напр. цену и качество.",
           "В 1961 г. Юрий Гагарин впервые полетел в космос.", "Это был очень долгий день... Но мы справились."],
    "th": ["วันนี้อากาศดีมาก เราไปเดินเล่นที่สวนสาธารณะกัน", "คุณเคยไปเที่ยวเชียงใหม่หรือไม่",
           "ปัญญาประดิษฐ์กำลังเปลี่ยนแปลงชีวิตของเรา!", "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
           "ฉันชอบอ่านหนังสือในวันหยุดสุดสัปดาห์", "อาหารไทยมีรสชาติเผ็ด เปรี้ยว หวาน และเค็ม",
           "การเรียนภาษาต้องใช้ความอดทนและการฝึกฝนอย่างสม่ำเสมอ", "แม่น้ำเจ้าพระยาไหลผ่านกรุงเทพฯ"],
}
LANGUAGE_CODES = {"zh": "ja", "ja": "ja", "hi": "hi", "ru": "ru", "th": "th"}  # the official checker knows no "zh" code
SEPARATORS = [" ", "", "\n", "\n\n", "  \n", "\r\n", "。", "! ", "? ", "...", "\n* ", " | "]
EXTRAS = ["😀", "🎉👍", "AI", "OK", "Python 3.11", "100%", "2024年", "e.g. this", "(注意)", "«цитата»", "--", "—"]
QUOTES = [('"', '"'), ("\u201c", "\u201d"), ("\u300c", "\u300d"), ("\u00ab", "\u00bb"), ("'", "'"), ('"', "\u201d")]
WORD_THRESHOLDS = (1, 5, 10, 20, 40, 80, 160, 320)
SENTENCE_THRESHOLDS = (1, 2, 3, 4, 5, 6, 8, 12)
GENERATED_PER_LANGUAGE = 30


def _compose(rng, lang):
    parts = []
    for _ in range(rng.randint(1, 9)):
        parts.append(rng.choice(SENTENCES[lang]))
        if rng.random() < 0.25:
            parts.append(rng.choice(EXTRAS))
        parts.append(rng.choice(SEPARATORS))
    text = "".join(parts[:-1] if rng.random() < 0.5 else parts)
    if rng.random() < 0.2:
        text = "* " + text
    if rng.random() < 0.3:
        opening, closing = rng.choice(QUOTES)
        text = opening + text + closing
    if rng.random() < 0.2:
        text = rng.choice(["\n", "  ", "\n\n"]) + text + rng.choice(["\n", "  ", " \n"])
    return text


def texts():
    """(name, language, text): the hand-written sentences, each alone and all joined, then the compositions."""
    out = []
    for lang, sentences in SENTENCES.items():
        for k, s in enumerate(sentences):
            out.append((f"{lang}-{k}", lang, s))
        out.append((f"{lang}-all", lang, " ".join(sentences)))
        out.append((f"{lang}-lines", lang, "\n".join(sentences)))
        rng = random.Random(f"multiif-cases-{lang}")
        for k in range(GENERATED_PER_LANGUAGE):
            out.append((f"{lang}-gen{k}", lang, _compose(rng, lang)))
    return out


def instructions(lang):
    """(instruction id, kwargs) checked on every text of language `lang`."""
    out = []
    for relation in ("less than", "at least"):
        out += [("length_constraints:number_words", {"num_words": n, "relation": relation}) for n in WORD_THRESHOLDS]
        out += [("length_constraints:number_sentences", {"num_sentences": n, "relation": relation})
                for n in SENTENCE_THRESHOLDS]
    out += [("startend:quotation", {}), ("language:response_language", {"language": LANGUAGE_CODES[lang]}),
            ("language:response_language", {"language": "en"}), ("punctuation:no_comma", {}),
            ("detectable_format:number_bullet_lists", {"num_bullets": 1}),
            ("keywords:letter_frequency", {"letter": "a", "let_frequency": 1, "let_relation": "at least"})]
    return out


def fingerprint():
    """A hash of every text and instruction, stored with the oracle's verdicts."""
    data = [(name, lang, text, instructions(lang)) for name, lang, text in texts()]
    return hashlib.sha256(json.dumps(data, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]
