"""Sequences and recurrent layers: the course's character models, translation and captioning."""
import pytest
from conftest import SPECS, spec_text

import archcalc
from archcalc.layers import Steps, Vector
from archcalc.views.wording import formula


def test_char_rnn_masse():
    """Slides 219-221: W_xh 3x4, W_hh 3x3, W_hy 4x3 (no bias on the slides) = 33 parameters."""
    result = archcalc.analyze(archcalc.load(str(SPECS / "char_rnn_masse.yaml")))
    assert result.layer("hidden").params == 3 * 4 + 3 * 3
    assert result.layer("output").params == 4 * 3
    assert result.totals.params == 33
    assert result.output_shape == Steps((4, 4))


def test_min_char_rnn_formula():
    """Karpathy's min-char-rnn: Wxh (H x V), Whh (H x H), Why (V x H), bh (H), by (V)."""
    result = archcalc.analyze(archcalc.load(str(SPECS / "min_char_rnn.yaml")))
    hidden, vocab, steps = 100, 65, 25
    assert result.totals.params == 2 * hidden * vocab + hidden ** 2 + hidden + vocab
    assert result.layer("Wxh_Whh_bh").neurons == steps * hidden  # the unrolled hidden states
    assert "1 bias (course)" in formula(result.layer("Wxh_Whh_bh").size_terms)


def test_seq2seq_m_to_n():
    result = archcalc.analyze(archcalc.load(str(SPECS / "seq2seq_assez.yaml")))
    h = 8
    assert result.layer("encoder").output_shape == Vector((h,))          # N-to-1
    assert result.layer("decoder").node.inputs == ("english", "encoder")  # h_0 from the encoder
    assert result.output_shape == Steps((7, 8))                          # e n o u g h <EoS>
    # PyTorch nn.RNN(6, 8): 8*6 + 8*8 + 2*8; nn.RNN(8, 8): 8*8 + 8*8 + 2*8; nn.Linear(8, 8)
    assert result.totals.params == (48 + 64 + 16) + (64 + 64 + 16) + (64 + 8)


def test_captioning_vgg16_encoder_is_frozen():
    result = archcalc.analyze(archcalc.load(str(SPECS / "captioning_vgg16.yaml")))
    vgg_without_classifier = 138_357_544 - (4096 * 1000 + 1000)
    assert result.totals.params - result.totals.trainable_params == vgg_without_classifier
    assert result.layer("next_word").output_shape == Steps((16, 10_000))


@pytest.mark.parametrize("fragment,message", [
    ("conv: {filters: 2, kernel: 3}", "conv works on feature maps [C, ...], but its input is the sequence 7x10 (TxF)"),
    ("rnn: {hidden: 4, inputs: [input, input]}", "the initial state of rnn must have the hidden size [4], got 7x10 (TxF)"),
    ("embedding: {vocabulary: 5, dim: 2}", "embedding reads token ids, declared as {steps: T}; got 7x10 (TxF)"),
])
def test_sequence_errors(fragment, message):
    with pytest.raises(archcalc.SpecError) as info:
        archcalc.analyze(archcalc.loads(spec_text({"steps": 7, "features": 10}, fragment)))
    assert info.value.message == message


def test_one_to_n_with_repeatvector():
    text = spec_text((3, 8, 8), "flatten", "dense: 16", "repeatvector: 5", "lstm: {hidden: 4}", "dense: 10")
    result = archcalc.analyze(archcalc.loads(text))
    assert result.output_shape == Steps((5, 10))
    assert result.layer("lstm1").params == 4 * (4 * 16 + 4 * 4 + 2 * 4)  # nn.LSTM(16, 4)
