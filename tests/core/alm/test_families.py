"""Every registered ALM family, proven on its tiny random-weight checkpoint.

One conformance suite, parametrized over the family table: each family builds its tiny
checkpoint offline (``ambiscope.core.alm.tiny``), loads through the backend by its folder,
and must show that

* the audio reaches the model (answers change when the audio changes);
* greedy and seeded sampling are token-identical to plain ``generate`` over the full inputs;
* label likelihoods equal a full forward pass of prompt + label + end of turn (1e-4);
* verifier P(yes) equals a full forward pass per verifier prompt;
* encode-once is on, and a clip's sampling, verifier prompts and label likelihoods run
  the audio encoder once;
* ``ambiscope make-tiny-model OUT --family F`` then ``ambiscope sample -m OUT --verifier self``
  works from the command line in every output mode.

A family whose checkpoint cannot be built on this machine skips with the exact reason
(``TinyUnavailable``); a family without a builder fails.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import LogitsProcessorList  # noqa: E402

from ambiscope.core.alm.backends.transformers.backend import repeat_rows  # noqa: E402
from ambiscope.core.alm.base import AudioInput, ChatPrompt, GenerationParams  # noqa: E402
from ambiscope.core.alm.families import FAMILIES  # noqa: E402
from ambiscope.core.alm.tiny import TinyUnavailable, build_tiny_model  # noqa: E402

PROMPT = ChatPrompt(
    user="Which emotion does the speaker express? Answer with one word.",
    system="You are an expert listener.",
)
LABELS = ["neutral", "happy", "sad", "sadness", "angry"]
VERIFY = [  # the same system text as PROMPT, as a run's verifier prompts have
    ChatPrompt(
        user=f"A listener judged the emotion as {lab}. Is that correct? Answer Yes or No.",
        system=PROMPT.system,
    )
    for lab in ("sad", "happy", "angry and very loud")
]
YES = ("Yes", " Yes", "yes", " yes", "YES", " YES")
NO = ("No", " No", "no", " no", "NO", " NO")


def _noise(seed: int, seconds: float = 2.5, rate: int = 16000) -> AudioInput:
    rng = np.random.default_rng(seed)
    return AudioInput((0.1 * rng.standard_normal(int(seconds * rate))).astype(np.float32), rate)


AUDIO = _noise(0)


@pytest.fixture(scope="module", params=FAMILIES.names())
def family_dir(request, tmp_path_factory) -> tuple[str, Path]:
    name = request.param
    if not FAMILIES.get(name).tiny:
        pytest.fail(f"family {name!r} has no tiny checkpoint builder")
    try:
        path = build_tiny_model(tmp_path_factory.mktemp(f"tiny-{name}"), family=name)
    except TinyUnavailable as exc:
        pytest.skip(f"{name}: {exc}")
    return name, path


@pytest.fixture(scope="module")
def backend(family_dir):
    from ambiscope.core.alm.backends.transformers.backend import TransformersBackend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    b = TransformersBackend(str(family_dir[1]), device="cpu")
    yield b
    b.close()
    torch.set_num_threads(threads)


def _plain(backend, sequences, prompt_len: int) -> list[list[int]]:
    """Generated ids per row, cut after the first stop token (as candidates are)."""
    rows = []
    for seq in sequences[:, prompt_len:].tolist():
        cut = next((i + 1 for i, t in enumerate(seq) if t in backend._eos_ids), len(seq))
        rows.append(seq[:cut])
    return rows


def _full_forward_logits(backend, inputs: dict, extra: list[int]) -> torch.Tensor:
    """Logits of ONE plain forward over the whole prompt (+ ``extra`` text tokens), no cache."""
    ids = inputs["input_ids"]
    kwargs = dict(inputs)
    if extra:
        tail = torch.tensor([extra], dtype=ids.dtype)
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor) and value.shape == ids.shape:
                fill = tail if key == "input_ids" else torch.zeros_like(tail, dtype=value.dtype)
                if key == "attention_mask":
                    fill = torch.ones_like(tail, dtype=value.dtype)
                kwargs[key] = torch.cat([value, fill], dim=1)
    with torch.no_grad():
        return backend.lm(**kwargs, use_cache=False).logits[0].float()


def test_loads_with_its_family_entry_and_encode_once(backend, family_dir) -> None:
    name, _ = family_dir
    family = FAMILIES.get(name)
    info = backend.describe()
    assert backend.family is family
    assert info["model_type"] in family.model_types and info["family"] == name
    assert info["encode_once"] is True
    assert backend.sample_rate == 16000


def test_audio_reaches_the_model(backend) -> None:
    params = GenerationParams(n=1, temperature=0, max_new_tokens=6)
    a = backend.sample(AUDIO, PROMPT, params)[0]
    b = backend.sample(_noise(99), PROMPT, params)[0]
    assert a.extra["token_ids"] != b.extra["token_ids"] or a.logprob != pytest.approx(b.logprob)
    la = backend.score_labels(AUDIO, PROMPT, LABELS)
    lb = backend.score_labels(_noise(99), PROMPT, LABELS)
    assert np.abs(la - lb).max() > 1e-4


def test_greedy_is_token_identical_to_generate(backend) -> None:
    params = GenerationParams(n=2, temperature=0, max_new_tokens=8)
    cands = backend.sample(AUDIO, PROMPT, params)
    assert cands[0].extra["encode_once"]
    inputs = backend.build_inputs(AUDIO, PROMPT)
    with torch.no_grad():
        ref = backend.lm.generate(**inputs, generation_config=backend.generation_config_for(params))
    want = _plain(backend, ref, inputs["input_ids"].shape[1])[0]
    assert [c.extra["token_ids"] for c in cands] == [want, want]


def test_seeded_sampling_is_token_identical_to_generate(backend) -> None:
    params = GenerationParams(n=4, temperature=1.0, max_new_tokens=8, seed=5)
    cands = backend.sample(AUDIO, PROMPT, params)
    inputs = backend.build_inputs(AUDIO, PROMPT)
    gc = backend.generation_config_for(params)
    sampler = backend.sampler_for(params, params.seed, 0, params.n)
    with torch.no_grad():
        ref = backend.lm.generate(
            **repeat_rows(inputs, params.n),
            generation_config=gc,
            logits_processor=LogitsProcessorList([sampler]),
        )
    assert [c.extra["token_ids"] for c in cands] == _plain(
        backend, ref, inputs["input_ids"].shape[1]
    )


@pytest.mark.parametrize("prefix", ["", "Answer:"])
def test_label_likelihood_equals_a_full_forward(backend, prefix: str) -> None:
    prompt = dataclasses.replace(PROMPT, assistant_prefix=prefix)
    labels = [f" {lab}" if prefix else lab for lab in LABELS]
    scores = backend.score_labels(AUDIO, prompt, labels)
    inputs = backend.build_inputs(AUDIO, prompt)
    n = inputs["input_ids"].shape[1]
    naive = []
    for label in labels:
        cont = backend.label_token_ids(prompt, label)
        logp = torch.log_softmax(_full_forward_logits(backend, inputs, cont[:-1]), dim=-1)
        naive.append(float(sum(logp[n - 1 + i, tok] for i, tok in enumerate(cont))))
    np.testing.assert_allclose(scores, naive, atol=1e-4)


def test_verifier_equals_a_full_forward(backend) -> None:
    p_yes = backend.verify(AUDIO, VERIFY)
    tok = backend.tokenizer
    yes = sorted({t[0] for w in YES if len(t := tok.encode(w, add_special_tokens=False)) == 1})
    no = sorted({t[0] for w in NO if len(t := tok.encode(w, add_special_tokens=False)) == 1})
    if not yes or not no:
        yes = [tok.encode("Yes", add_special_tokens=False)[0]]
        no = [tok.encode("No", add_special_tokens=False)[0]]
    naive = []
    for prompt in VERIFY:
        probs = torch.softmax(
            _full_forward_logits(backend, backend.build_inputs(AUDIO, prompt), [])[-1], dim=-1
        )
        py, pn = float(probs[yes].sum()), float(probs[no].sum())
        naive.append(py / (py + pn))
    np.testing.assert_allclose(p_yes, naive, atol=1e-4)


def _audio_encoder(backend):
    module = backend.lm
    for part in backend.family.audio_encoder.split("."):
        module = getattr(module, part)
    return module


def test_audio_is_encoded_once_per_clip(backend, monkeypatch) -> None:
    """Sampling, label likelihood and verifier prompts of one clip share one processed
    input and one encoded audio prefix: the feature extractor and the encoder run once."""
    encoder: list[int] = []
    features: list[int] = []
    extractor = type(backend._feature_extractor())
    real = extractor.__call__

    def counted(self, *args, **kwargs):
        features.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(extractor, "__call__", counted)
    handle = _audio_encoder(backend).register_forward_hook(lambda *a: encoder.append(1))
    clip = _noise(4242)
    try:
        backend.sample(clip, PROMPT, GenerationParams(n=4, max_new_tokens=4, seed=0))
        backend.score_labels(clip, dataclasses.replace(PROMPT, assistant_prefix="Answer:"), LABELS)
        backend.verify(clip, VERIFY)
        assert (len(encoder), len(features)) == (1, 1)
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    from ambiscope.core.demo import DemoSpec, build_demo

    path = tmp_path_factory.mktemp("families-ws") / "ws.db"
    build_demo(path, DemoSpec(n_clips=4, seed=3))
    return path


def test_cli_make_tiny_model_and_sample_every_mode(family_dir, demo_db, tmp_path) -> None:
    from click.testing import CliRunner

    from ambiscope.tui.cli.main import main

    name, _ = family_dir
    runner = CliRunner()
    out = tmp_path / "model"
    made = runner.invoke(main, ["make-tiny-model", str(out), "--family", name])
    assert made.exit_code == 0, made.output
    for mode in ("label", "distribution", "cot"):
        args = ["--db", str(demo_db), "sample", "-d", "demo", "-m", str(out), "--mode", mode]
        args += ["--n", "2", "--max-new-tokens", "4", "--limit", "1", "--verifier", "self"]
        args += ["--device", "cpu", "--name", f"{name}-{mode}"]
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "1 clips sampled" in result.output and "likelihood" in result.output
