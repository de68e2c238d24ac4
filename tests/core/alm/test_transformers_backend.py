"""TransformersBackend on the tiny Qwen2-Audio checkpoint: encode-once equals plain generate.

Every fast path (prefill once + expanded KV cache) is checked against an independent naive
computation: plain ``model.generate`` over the full inputs (audio re-encoded per row), or a
full forward pass of prompt + answer per label / per verifier prompt.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import LogitsProcessorList  # noqa: E402

from ambiscope.core.alm.backends.transformers import backend as tb  # noqa: E402
from ambiscope.core.alm.backends.transformers.backend import (  # noqa: E402
    TransformersBackend,
    repeat_rows,
)
from ambiscope.core.alm.base import (  # noqa: E402
    AudioInput,
    Backend,
    BackendError,
    ChatPrompt,
    GenerationParams,
    ModelLoadError,
)
from ambiscope.core.alm.families import GENERIC, build_messages, family_for  # noqa: E402

PROMPT = ChatPrompt(
    user="Which emotion does the speaker express? Answer with one word.",
    system="You are an expert listener.",
)
LABELS = ["neutral", "happy", "sad", "sadness", "angry", "Final answer: fear"]


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> TransformersBackend:
    # One intra-op thread: the tiny model's 64-wide matmuls gain nothing from two, and on a
    # shared 2-core box two spinning OpenMP threads make the suite several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    b = TransformersBackend(str(tiny_model_dir), device="cpu")
    yield b
    b.close()
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _reset_batch_size(backend: TransformersBackend):
    backend.batch_size = None
    yield
    backend.batch_size = None


def _noise(seed: int, seconds: float = 3.0, rate: int = 16000) -> AudioInput:
    rng = np.random.default_rng(seed)
    return AudioInput((0.1 * rng.standard_normal(int(seconds * rate))).astype(np.float32), rate)


AUDIO = _noise(0)


def _ids(cands) -> list[list[int]]:
    return [c.extra["token_ids"] for c in cands]


def _plain_tokens(backend, out, prompt_len: int) -> list[list[int]]:
    """Generated ids per row of a plain generate, cut after the first stop token."""
    rows = []
    for seq in out[:, prompt_len:].tolist():
        cut = next((i + 1 for i, t in enumerate(seq) if t in backend._eos_ids), len(seq))
        rows.append(seq[:cut])
    return rows


# --------------------------------------------------------------------- protocol & loading


def test_implements_protocol_and_describes_itself(backend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name == "transformers"
    assert backend.sample_rate == 16000
    assert backend.max_audio_seconds == 30.0
    info = backend.describe()
    assert info["model_type"] == "qwen2_audio"
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["commit"].startswith("local-")
    assert info["parameters"] > 0 and info["encode_once"] and info["family_verified"]
    assert {"torch", "transformers", "model_id"} <= info.keys()
    json.dumps(info)  # provenance is stored as JSON


def test_missing_local_path_is_a_one_line_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as err:
        TransformersBackend(str(tmp_path / "no-such-model"))
    assert "not found" in str(err.value) and "\n" not in str(err.value)


def test_hub_id_offline_is_a_one_line_load_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelLoadError) as err:
        TransformersBackend("ambiscope-test/definitely-not-a-model")
    message = str(err.value)
    assert "\n" not in message and "HF_HUB_OFFLINE" in message


def test_remote_code_checkpoint_needs_opt_in(tmp_path: Path) -> None:
    config = {"model_type": "ambiscope_custom", "auto_map": {"AutoConfig": "cfg.CustomConfig"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError) as err:
        TransformersBackend(str(tmp_path))
    assert "trust_remote_code" in str(err.value) and "\n" not in str(err.value)


def test_bad_dtype_is_a_load_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="dtype"):
        TransformersBackend(str(tiny_model_dir), dtype="int3")


# --------------------------------------------------------------------- sampling


def test_greedy_encode_once_is_token_identical_to_plain_generate(backend) -> None:
    params = GenerationParams(n=3, temperature=0, max_new_tokens=16)
    cands = backend.sample(AUDIO, PROMPT, params)
    inputs = backend.build_inputs(AUDIO, PROMPT)
    with torch.no_grad():
        ref = backend.lm.generate(**inputs, generation_config=backend.generation_config_for(params))
    expected = _plain_tokens(backend, ref, inputs["input_ids"].shape[1])[0]
    assert len(cands) == 3
    assert all(ids == expected for ids in _ids(cands))
    assert cands[0].extra["encode_once"] and cands[0].extra["search"] == "greedy"


def test_seeded_sampling_equals_plain_generate_over_n_rows(backend) -> None:
    """Plain generate over the full inputs (audio re-encoded per row) with the same
    per-row sampler draws the same tokens: encode-once changes where the prompt's keys come
    from, nothing else. The log-probs are checked against generate's raw logits
    (log_softmax, no temperature)."""
    params = GenerationParams(n=6, temperature=0.9, top_p=0.95, max_new_tokens=12, seed=1234)
    cands = backend.sample(AUDIO, PROMPT, params)
    inputs = backend.build_inputs(AUDIO, PROMPT)
    gc = backend.generation_config_for(params)
    gc.return_dict_in_generate = True
    gc.output_logits = True
    sampler = backend.sampler_for(params, params.seed, 0, params.n)
    with torch.no_grad():
        ref = backend.lm.generate(
            **repeat_rows(inputs, params.n),
            generation_config=gc,
            logits_processor=LogitsProcessorList([sampler]),
        )
    prompt_len = inputs["input_ids"].shape[1]
    expected = _plain_tokens(backend, ref.sequences, prompt_len)
    assert _ids(cands) == expected
    logp = torch.log_softmax(torch.stack(ref.logits, dim=1).float(), dim=-1)
    for row, (cand, ids) in enumerate(zip(cands, expected, strict=True)):
        want = float(sum(logp[row, t, tok] for t, tok in enumerate(ids)))
        assert cand.logprob == pytest.approx(want, abs=1e-3)
    assert len({tuple(ids) for ids in expected}) > 1  # really sampled


def test_sampling_distribution_matches_tempered_softmax(backend) -> None:
    """First tokens of many samples follow softmax(logits / T) (chi-square, independent)."""
    from scipy.stats import chisquare

    temperature, n = 0.7, 3000
    params = GenerationParams(n=n, temperature=temperature, max_new_tokens=1, seed=7)
    cands = backend.sample(AUDIO, PROMPT, params)
    inputs = backend.build_inputs(AUDIO, PROMPT)
    with torch.no_grad():
        logits = backend.lm(**inputs).logits[0, -1].float()
    probs = torch.softmax(logits.double() / temperature, dim=-1).numpy()
    counts = np.bincount([c.extra["token_ids"][0] for c in cands], minlength=probs.size)
    expected = probs * n
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    exp *= obs.sum() / exp.sum()  # float32 softmax sums to 1 only up to rounding
    assert big.sum() >= 5
    assert chisquare(obs, exp).pvalue > 1e-3


def test_candidates_have_consistent_scores(backend) -> None:
    params = GenerationParams(n=8, temperature=1.0, max_new_tokens=10, seed=3)
    cands = backend.sample(AUDIO, PROMPT, params)
    assert len(cands) == 8
    for c in cands:
        assert isinstance(c.text, str)
        assert 1 <= c.n_tokens <= 10 and len(c.extra["token_ids"]) == c.n_tokens
        assert math.isfinite(c.logprob) and c.logprob < 0
        assert c.logprob_norm == pytest.approx(c.logprob / c.n_tokens)
        assert c.extra["finish_reason"] in {"stop", "length"}
        assert c.extra["seed"] == 3
    again = backend.sample(AUDIO, PROMPT, params)
    assert [c.text for c in again] == [c.text for c in cands]


def test_audio_is_encoded_once_per_clip(backend, monkeypatch) -> None:
    """One clip's sampling, label likelihood, verifier prompts and beams run the feature
    extractor once and the audio tower once, on one row; plain generate runs it on N rows."""
    rows: list[int] = []
    features: list[int] = []
    extractor = type(backend.processor.feature_extractor)
    real = extractor.__call__

    def counted(self, *args, **kwargs):
        features.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(extractor, "__call__", counted)
    tower = backend.lm.model.audio_tower
    handle = tower.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
    clip = _noise(1234)
    try:
        params = GenerationParams(n=5, max_new_tokens=4, seed=0)
        backend.sample(clip, PROMPT, params)
        label_prompt = dataclasses.replace(PROMPT, user="Answer with one emotion word.")
        backend.score_labels(clip, label_prompt, LABELS)
        same_system = [dataclasses.replace(p, system=PROMPT.system) for p in _verifier_prompts()]
        backend.verify(clip, same_system)
        backend.sample(clip, PROMPT, GenerationParams(search="beam", beams=3, max_new_tokens=4))
        assert rows == [1] and features == [1]
        backend.verify(clip, _verifier_prompts())  # another system text: another prefix
        backend.score_labels(clip, PROMPT, LABELS)  # ... and the first one is still kept
        assert rows == [1, 1] and features == [1, 1]
        rows.clear()
        features.clear()
        backend.sample(_noise(4321), PROMPT, params)  # the next clip: encoded once more
        assert rows == [1] and features == [1]
        rows.clear()
        gc = backend.generation_config_for(params)
        with torch.no_grad():
            inputs = repeat_rows(backend.build_inputs(clip, PROMPT), 5)
            backend.lm.generate(**inputs, generation_config=gc)
        assert rows == [5]  # the baseline re-encodes the audio for every row
    finally:
        handle.remove()


def test_prompts_assembled_from_the_clip_prefix_equal_the_processor(backend) -> None:
    clip = _noise(77)
    backend.sample(clip, PROMPT, GenerationParams(n=1, temperature=0, max_new_tokens=2))
    same_system = [dataclasses.replace(p, system=PROMPT.system) for p in _verifier_prompts()]
    for prompt in [*same_system, dataclasses.replace(PROMPT, assistant_prefix="Answer:")]:
        fast = backend._encode(clip, prompt)
        assert fast.head is not None and not fast.has_audio  # no processor, no encoder
        want = backend.build_inputs(clip, prompt)
        assert torch.equal(fast.ids, want["input_ids"])
        assert torch.equal(fast.inputs["attention_mask"], want["attention_mask"])


def test_audio_reaches_the_decoder_through_the_cache(backend) -> None:
    params = GenerationParams(n=1, temperature=0, max_new_tokens=8)
    a = backend.sample(AUDIO, PROMPT, params)[0]
    b = backend.sample(_noise(99), PROMPT, params)[0]
    assert a.extra["token_ids"] != b.extra["token_ids"] or a.logprob != pytest.approx(b.logprob)


def test_audio_at_another_rate_is_resampled(backend) -> None:
    at_8k = _noise(5, rate=8000)
    cands = backend.sample(at_8k, PROMPT, GenerationParams(n=2, max_new_tokens=4, seed=1))
    assert len(cands) == 2


def test_candidates_do_not_depend_on_chunks_n_or_the_global_rng(backend) -> None:
    """Candidate i draws from derive_seed(clip seed, i) alone: decoding in chunks
    (batch_size < N), asking for more candidates, or a disturbed global RNG change nothing."""
    params = GenerationParams(n=7, temperature=1.0, max_new_tokens=6, seed=11)
    whole = backend.sample(AUDIO, PROMPT, params)
    backend.batch_size = 3
    chunked = backend.sample(AUDIO, PROMPT, params)
    assert chunked[0].extra["decode_batch"] == 3 and _ids(chunked) == _ids(whole)
    backend.batch_size = None
    more = backend.sample(AUDIO, PROMPT, dataclasses.replace(params, n=10))
    assert _ids(more)[:7] == _ids(whole)
    state = torch.random.get_rng_state()
    torch.manual_seed(999)
    assert _ids(backend.sample(AUDIO, PROMPT, params)) == _ids(whole)
    torch.random.set_rng_state(state)
    other = backend.sample(AUDIO, PROMPT, dataclasses.replace(params, seed=12))
    assert _ids(other) != _ids(whole)


def test_out_of_memory_halves_the_batch(backend, monkeypatch) -> None:
    real = backend.lm.generate

    def tight(*args, **kwargs):
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(backend.lm, "generate", tight)
    cands = backend.sample(AUDIO, PROMPT, GenerationParams(n=5, max_new_tokens=4, seed=2))
    assert len(cands) == 5 and backend.batch_size == 2
    assert cands[0].extra["decode_batch"] == 2


def test_other_failures_are_one_line_backend_errors(backend, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(backend.lm, "generate", broken)
    with pytest.raises(BackendError) as err:
        backend.sample(AUDIO, PROMPT, GenerationParams(n=2, max_new_tokens=4))
    assert "boom second line" in str(err.value)


# --------------------------------------------------------------------- beams


def test_beams_best_first_and_equal_to_plain_beam_search(backend) -> None:
    params = GenerationParams(search="beam", beams=3, max_new_tokens=8)
    beams = backend.sample(AUDIO, PROMPT, params)
    assert len(beams) == 3
    scores = [b.extra["beam_score"] for b in beams]
    assert scores == sorted(scores, reverse=True)
    for b in beams:
        assert b.logprob_norm == pytest.approx(b.logprob / b.n_tokens)
        assert b.logprob_norm == pytest.approx(b.extra["beam_score"], abs=1e-4)
    inputs = backend.build_inputs(AUDIO, PROMPT)
    gc = backend.generation_config_for(GenerationParams(n=1, temperature=0, max_new_tokens=8))
    gc.num_beams = gc.num_return_sequences = 3
    with torch.no_grad():
        ref = backend.lm.generate(**inputs, generation_config=gc)
    assert _ids(beams) == _plain_tokens(backend, ref, inputs["input_ids"].shape[1])


# --------------------------------------------------------------------- label likelihood


def _naive_label_logprob(backend, prompt: ChatPrompt, label: str) -> float:
    """Full forward of the whole text prompt + label + <|im_end|>; no cache, no shortcuts."""
    processor = backend.processor
    messages = [
        {"role": "system", "content": prompt.system},
        {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": prompt.user}]},
    ]
    head = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    head += prompt.assistant_prefix
    full = head + label + "<|im_end|>"
    kw = {"audio": [AUDIO.samples], "sampling_rate": 16000, "return_tensors": "pt"}
    n_head = processor(text=[head], **kw)["input_ids"].shape[1]
    inputs = processor(text=[full], **kw)
    with torch.no_grad():
        logits = backend.lm(**inputs).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    ids = inputs["input_ids"][0]
    return float(sum(logp[t - 1, ids[t]] for t in range(n_head, len(ids))))


@pytest.mark.parametrize("prefix", ["", "Answer:"])
def test_score_labels_equals_naive_full_forward(backend, prefix: str) -> None:
    prompt = dataclasses.replace(PROMPT, assistant_prefix=prefix)
    labels = [f" {lab}" if prefix else lab for lab in LABELS]
    scores = backend.score_labels(AUDIO, prompt, labels)
    assert scores.shape == (len(labels),) and np.isfinite(scores).all()
    naive = [_naive_label_logprob(backend, prompt, lab) for lab in labels]
    np.testing.assert_allclose(scores, naive, atol=2e-4)


def test_score_labels_chunks_and_handles_empty(backend, monkeypatch) -> None:
    full = backend.score_labels(AUDIO, PROMPT, LABELS)
    backend.batch_size = 2
    np.testing.assert_allclose(backend.score_labels(AUDIO, PROMPT, LABELS), full, atol=1e-5)
    backend.batch_size = None
    monkeypatch.setattr(tb, "_LOGIT_BUDGET", 1)  # logits memory cap -> one row at a time
    np.testing.assert_allclose(backend.score_labels(AUDIO, PROMPT, LABELS), full, atol=1e-5)
    assert backend.score_labels(AUDIO, PROMPT, []).shape == (0,)


def test_label_tokens_end_with_end_of_turn(backend) -> None:
    im_end = backend.tokenizer.convert_tokens_to_ids("<|im_end|>")
    sad = backend.label_token_ids(PROMPT, "sad")
    sadness = backend.label_token_ids(PROMPT, "sadness")
    assert sad[-1] == im_end and sadness[-1] == im_end
    assert sad != sadness[: len(sad)]  # not a prefix of each other once the turn ends


# --------------------------------------------------------------------- verifier


def _verifier_prompts() -> list[ChatPrompt]:
    return [
        ChatPrompt(
            user=f"A listener judged the emotion as {lab}. Is that correct? Answer Yes or No."
        )
        for lab in ("sad", "happy", "angry and very loud")
    ]


def test_verify_equals_naive_per_prompt_forward(backend) -> None:
    prompts = _verifier_prompts()
    p_yes = backend.verify(AUDIO, prompts)
    assert p_yes.shape == (3,) and ((p_yes > 0) & (p_yes < 1)).all()
    tok = backend.tokenizer
    # Documented rule: P(yes) sums every single-token spelling of Yes (and of No).
    yes = [
        tok.encode(w, add_special_tokens=False)
        for w in ("Yes", " Yes", "yes", " yes", "YES", " YES")
    ]
    no = [tok.encode(w, add_special_tokens=False) for w in ("No", " No", "no", " no", "NO", " NO")]
    yes_ids = sorted({t[0] for t in yes if len(t) == 1})
    no_ids = sorted({t[0] for t in no if len(t) == 1})
    assert len(yes_ids) >= 4 and len(no_ids) >= 4
    naive = []
    for prompt in prompts:
        inputs = backend.build_inputs(AUDIO, prompt)
        with torch.no_grad():
            probs = torch.softmax(backend.lm(**inputs).logits[0, -1].float(), dim=-1)
        py, pn = float(probs[yes_ids].sum()), float(probs[no_ids].sum())
        naive.append(py / (py + pn))
    np.testing.assert_allclose(p_yes, naive, atol=1e-4)


def test_verify_chunked_and_single(backend, monkeypatch) -> None:
    prompts = _verifier_prompts()
    full = backend.verify(AUDIO, prompts)
    backend.batch_size = 1
    np.testing.assert_allclose(backend.verify(AUDIO, prompts), full, atol=1e-5)
    backend.batch_size = None
    monkeypatch.setattr(tb, "_LOGIT_BUDGET", 1)
    np.testing.assert_allclose(backend.verify(AUDIO, prompts), full, atol=1e-5)
    np.testing.assert_allclose(backend.verify(AUDIO, prompts[:1]), full[:1], atol=1e-5)


# --------------------------------------------------------------------- family paths


def test_generic_template_path_builds_the_same_inputs(backend, monkeypatch) -> None:
    """The generic apply_chat_template(tokenize=True) path agrees with the text path here."""
    prompts = [PROMPT, dataclasses.replace(PROMPT, assistant_prefix="Final answer:")]
    text_mode = [backend.build_inputs(AUDIO, p)["input_ids"] for p in prompts]
    monkeypatch.setattr(backend, "family", dataclasses.replace(backend.family, render="template"))
    for prompt, want in zip(prompts, text_mode, strict=True):
        assert torch.equal(backend.build_inputs(AUDIO, prompt)["input_ids"], want)


def test_without_encode_once_results_are_unchanged(backend, monkeypatch) -> None:
    """The fallback for unverified families (plain generate, full forwards) agrees."""
    params = GenerationParams(n=3, temperature=0.8, max_new_tokens=5, seed=5)
    labels, prompts = LABELS[2:4], _verifier_prompts()[:2]
    fast = backend.sample(AUDIO, PROMPT, params)
    scores = backend.score_labels(AUDIO, PROMPT, labels)
    p_yes = backend.verify(AUDIO, prompts)
    monkeypatch.setattr(backend, "family", dataclasses.replace(backend.family, encode_once=False))
    slow = backend.sample(AUDIO, PROMPT, params)
    assert _ids(slow) == _ids(fast) and not slow[0].extra["encode_once"]
    np.testing.assert_allclose(backend.score_labels(AUDIO, PROMPT, labels), scores, atol=2e-4)
    np.testing.assert_allclose(backend.verify(AUDIO, prompts), p_yes, atol=1e-4)


def test_end_of_turn_is_read_off_the_chat_template(backend, monkeypatch) -> None:
    im_end = backend.tokenizer.convert_tokens_to_ids("<|im_end|>")
    monkeypatch.setattr(backend, "family", dataclasses.replace(backend.family, end_of_turn=None))
    assert backend._end_of_turn_ids() == (im_end,)


def test_an_end_of_turn_of_several_tokens_is_used_whole(backend, monkeypatch) -> None:
    """A marker that is not one token is never replaced by another token (issue 13.5):
    label scoring appends all of it, and answers are cut where it ends."""
    family = dataclasses.replace(backend.family, end_of_turn="END OF TURN")
    monkeypatch.setattr(backend, "family", family)
    seq = tuple(backend.tokenizer.encode("END OF TURN", add_special_tokens=False))
    assert len(seq) > 1
    monkeypatch.setattr(backend, "_eot_ids", backend._end_of_turn_ids())
    assert backend._eot_ids == seq
    ids = backend.label_token_ids(PROMPT, "sad")
    assert tuple(ids[-len(seq) :]) == seq
    labels = LABELS[:3]
    cached = backend.score_labels(AUDIO, PROMPT, labels)
    monkeypatch.setattr(backend, "family", dataclasses.replace(family, encode_once=False))
    np.testing.assert_allclose(backend.score_labels(AUDIO, PROMPT, labels), cached, atol=2e-4)
    word = backend.tokenizer.encode("sad", add_special_tokens=False)
    tokens = torch.tensor([*word, *seq, *word])
    assert backend._first_stop(tokens) == (len(word), len(seq))
    eos = backend._eos_ids[0]
    assert backend._first_stop(torch.tensor([*word, eos, *seq])) == (len(word), 1)


def test_family_table_placement() -> None:
    assert family_for("qwen2_audio").verified
    assert family_for("some_future_alm") is GENERIC
    generic = build_messages(GENERIC, "Which emotion?", "Be brief.", "AUDIO")
    assert generic == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "audio", "audio": "AUDIO"},
                {"type": "text", "text": "Which emotion?"},
            ],
        },
    ]
    granite = build_messages(family_for("granite_speech"), "Which emotion?", None, None)
    assert granite == [{"role": "user", "content": "<|audio|>Which emotion?"}]
    voxtral = build_messages(family_for("voxtral"), "Which emotion?", "Be brief.", "B64")
    assert [m["role"] for m in voxtral] == ["user"]  # no system role: merged into the user turn
    assert voxtral[0]["content"][0] == {"type": "audio", "base64": "B64"}
    assert voxtral[0]["content"][1]["text"].startswith("Be brief.")


# --------------------------------------------------------------------- clips in one batch


def test_a_batch_of_clips_decodes_greedy_answers_equal_to_one_clip_at_a_time(backend) -> None:
    """Prompts of different lengths (left-padded, masked) and clips of different lengths."""
    items = [
        (
            _noise(300 + i, seconds=1.0 + i),
            dataclasses.replace(PROMPT, user=PROMPT.user + " Be brief." * i),
        )
        for i in range(4)
    ]
    params = GenerationParams(n=3, temperature=0, max_new_tokens=12)
    alone = [backend.sample(audio, prompt, params) for audio, prompt in items]
    together = backend.sample_batch(items, params)
    assert [len(c) for c in together] == [3, 3, 3, 3]
    for one, many in zip(alone, together, strict=True):
        assert [c.extra["token_ids"] for c in many] == [c.extra["token_ids"] for c in one]
        assert many[0].logprob == pytest.approx(one[0].logprob, abs=1e-4)
        assert many[0].extra["batch_clips"] == 4


def test_a_batch_of_clips_samples_what_one_clip_at_a_time_samples(backend) -> None:
    """Seeded samples too: each clip keeps its own seed, each candidate its own stream."""
    items = [(_noise(400 + i), PROMPT) for i in range(3)]
    params = GenerationParams(n=4, temperature=1.0, max_new_tokens=6)
    seeds = [9, 10, 11]
    together = backend.sample_batch(items, params, seeds=seeds)
    alone = [
        backend.sample(audio, prompt, dataclasses.replace(params, seed=seed))
        for (audio, prompt), seed in zip(items, seeds, strict=True)
    ]
    assert [_ids(c) for c in together] == [_ids(c) for c in alone]
    assert all(math.isfinite(c.logprob) and c.n_tokens >= 1 for cs in together for c in cs)


def test_clips_per_batch_from_the_option_or_free_memory(backend, monkeypatch) -> None:
    params = GenerationParams(n=8, temperature=1.0, max_new_tokens=16)
    assert 1 <= backend.clips_per_batch(params) <= 16
    monkeypatch.setattr(backend, "batch_clips", 5)
    assert backend.clips_per_batch(params) == 5
    assert backend.clips_per_batch(params, requested=3) == 3  # a run's --batch-clips
    monkeypatch.setattr(tb, "_free_memory", lambda device: 0)
    monkeypatch.setattr(backend, "batch_clips", None)
    assert backend.clips_per_batch(params) == 1
    assert backend.clips_per_batch(GenerationParams(search="beam", beams=2)) == 1


def test_a_missing_family_dependency_names_its_extra(backend, monkeypatch) -> None:
    monkeypatch.setattr(backend, "family", family_for("voxtral"))
    missing = ImportError("VoxtralProcessor requires the mistral_common library")
    message = str(backend._load_error("processor", missing))
    assert "pip install 'ambiscope[voxtral]'" in message and "\n" not in message
    other = str(backend._load_error("model", OSError("disk on fire")))
    assert "ambiscope[" not in other
