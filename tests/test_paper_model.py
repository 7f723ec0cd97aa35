"""The `paper` preset: the paper's architecture, its uncased bert-base vocabulary and its tokenization."""
from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import pytest
import torch

from exiflang.models import paper

# Well-known ids of the bert-base-uncased vocabulary (the one distilbert-base-uncased uses unchanged).
KNOWN_IDS = {
    "[PAD]": 0, "[unused0]": 1, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103,
    "!": 999, ",": 1010, ".": 1012, "a": 1037, "the": 1996, "of": 1997, "and": 1998, "in": 1999, "to": 2000,
    "##s": 2015, "world": 2088, "hello": 7592, "##～": 30521,
}


def _vocab_lines() -> list[str]:
    """The vocabulary file, one token per line."""
    return paper.vocab_file().read_text(encoding="utf-8").split("\n")[:-1]


# --- an independent statement of BERT's uncased tokenization (what the official DistilBertTokenizer does) ---

def _is_punct(ch: str) -> bool:
    """BERT's punctuation: ASCII symbols plus every Unicode P* character."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _basic_tokens(text: str) -> list[str]:
    """Lower-case, strip accents, split on whitespace and around punctuation."""
    text = "".join(" " if ch.isspace() else ch for ch in text
                   if not (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r") and ord(ch) != 0xFFFD)
    tokens = []
    for word in text.lower().split():
        word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        current = ""
        for ch in word:
            if _is_punct(ch):
                tokens += [current] if current else []
                tokens.append(ch)
                current = ""
            else:
                current += ch
        tokens += [current] if current else []
    return tokens


def _wordpiece(token: str, vocab: dict[str, int]) -> list[int]:
    """Greedy longest-match-first WordPiece; a word that cannot be covered is one [UNK]."""
    if len(token) > 100:
        return [vocab["[UNK]"]]
    ids, start = [], 0
    while start < len(token):
        end = len(token)
        while end > start:
            piece = token[start:end] if start == 0 else "##" + token[start:end]
            if piece in vocab:
                ids.append(vocab[piece])
                break
            end -= 1
        if end == start:
            return [vocab["[UNK]"]]
        start = end
    return ids


def reference_ids(text: str, vocab: dict[str, int], max_length: int = 512) -> list[int]:
    """[CLS] wordpieces [SEP], truncated to max_length like the official tokenizer call."""
    ids = [i for tok in _basic_tokens(text) for i in _wordpiece(tok, vocab)]
    return [vocab["[CLS]"], *ids[: max_length - 2], vocab["[SEP]"]]


@pytest.fixture(scope="module")
def vocab() -> dict[str, int]:
    """token -> id from the vocabulary file."""
    return {tok: i for i, tok in enumerate(_vocab_lines())}


@pytest.fixture(scope="module")
def model():
    """The `paper` preset with random weights, in eval mode."""
    return paper.create_paper_model(seed=0).eval()


def test_vocabulary_is_bert_base_uncased(vocab):
    """30,522 entries, the special tokens at their standard ids, spot-checked words, the known file hash."""
    lines = _vocab_lines()
    assert len(lines) == paper.VOCAB_SIZE == 30522
    assert len(vocab) == 30522  # no duplicates
    for token, idx in {**KNOWN_IDS, **paper.SPECIAL_TOKEN_IDS}.items():
        assert vocab[token] == idx, token
    assert all(t == t.lower() for t in lines if not t.startswith("[")), "an uncased vocabulary has no capitals"
    assert hashlib.sha256(paper.vocab_file().read_bytes()).hexdigest() == paper.VOCAB_SHA256


def test_model_tokenizer_uses_that_vocabulary(model, vocab):
    """The tokenizer the model actually runs (the package's tokenizer.json) has exactly the vocab.txt mapping."""
    assert model.text.tokenizer.tokenizer.get_vocab() == vocab
    assert model.text.tokenizer.max_length == 512


def _exif_texts(photos_dir: Path, n: int = 6) -> list[str]:
    """EXIF texts of a few real shared photos, in the default text format."""
    from exiflang.exif import exif_to_text, read_exif

    paths = sorted(photos_dir.rglob("*.jpg"))[:: max(1, len(sorted(photos_dir.rglob("*.jpg"))) // n)][:n]
    return [exif_to_text(read_exif(p)) for p in paths]


def test_tokenization_matches_reference_on_real_exif(model, vocab, photos_dir):
    """Real EXIF texts tokenize to the same ids as an independent uncased WordPiece, [CLS] ... [SEP]."""
    texts = _exif_texts(photos_dir)
    assert all(len(t) > 50 for t in texts)
    batch = model.tokenize(texts)
    for row, text in enumerate(texts):
        n = int(batch["attention_mask"][row].sum())
        assert batch["input_ids"][row, :n].tolist() == reference_ids(text, vocab), text
        assert batch["input_ids"][row, n:].eq(0).all()  # [PAD] after the text


def test_long_text_keeps_512_tokens_not_128(model, vocab):
    """The package's tokenizer.json truncates at 128; the paper preset reads up to 512 tokens."""
    text = ", ".join(f"Tag Number {i}: value {i}.{i}" for i in range(120))
    expected = reference_ids(text, vocab, max_length=10_000)
    assert len(expected) > 512
    ids = model.tokenize([text])["input_ids"][0].tolist()
    assert len(ids) == 512
    assert ids == reference_ids(text, vocab, max_length=512)
    assert ids[-1] == vocab["[SEP]"]


def test_architecture(model):
    """ResNet-50 with fc 2048->768, DistilBERT defaults without projection, fixed logit scale 100, 128 patches."""
    from transformers import DistilBertConfig, DistilBertModel

    from exiflang.models.resnet import Bottleneck

    assert model.embed_dim == 768 and model.patch_size == 128
    image = model.image
    assert [len(getattr(image, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert isinstance(image.layer1[0], Bottleneck)
    assert tuple(image.conv1.weight.shape) == (64, 3, 7, 7) and isinstance(image.maxpool, torch.nn.MaxPool2d)
    assert tuple(image.fc.weight.shape) == (768, 2048)
    # torchvision's ResNet-50 has 25,557,032 parameters; minus its 1000-way fc, plus our 2048->768 fc.
    n_image = sum(p.numel() for p in image.parameters())
    assert n_image == 25_557_032 - (2048 * 1000 + 1000) + (2048 * 768 + 768)
    backbone = model.text.backbone
    assert isinstance(backbone, DistilBertModel)
    assert backbone.config.to_diff_dict() == DistilBertConfig().to_diff_dict()
    assert isinstance(model.text.proj, torch.nn.Identity)
    assert float(model.logit_scale) == pytest.approx(100.0)
    assert "log_logit_scale" not in dict(model.named_parameters())  # fixed, not learned


def test_encoders_follow_the_official_forward(model, vocab):
    """encode_image applies CLIP normalisation before the ResNet; encode_text is the masked mean of DistilBERT."""
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    texts = ["Make: Canon, Model: Canon EOS 40D, Exposure Time: 1/125", "Make: NIKON CORPORATION"]
    with torch.no_grad():
        emb = model.encode_image(x)
        torch.testing.assert_close(emb, model.image((x - mean) / std), rtol=1e-4, atol=1e-5)
        ours = model.encode_text(texts)
        for row, text in enumerate(texts):
            ids = torch.tensor([reference_ids(text, vocab)])
            hidden = model.text.backbone(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            torch.testing.assert_close(ours[row], hidden[0].mean(0), rtol=1e-4, atol=1e-5)
    assert emb.shape == (2, 768) and ours.shape == (2, 768)
