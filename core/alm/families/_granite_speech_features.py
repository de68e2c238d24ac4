"""Granite Speech's log-mel features without torchaudio.

``GraniteSpeechFeatureExtractor`` needs torchaudio for exactly one thing, a
``torchaudio.transforms.MelSpectrogram`` with default settings, and refuses to construct
without it. torchaudio wheels are tied to one torch build (and CUDA flavour), so an audio
workbench often cannot import it even where torch works. The transform is a plain formula:
a centred, reflect-padded STFT with a periodic Hann window of ``win_length`` zero-padded to
``n_fft``, its power spectrum, and an HTK mel filter bank without area normalisation from
0 Hz to Nyquist. :class:`TorchGraniteSpeechFeatureExtractor` computes the same thing with
``torch.stft`` and ``transformers.audio_utils.mel_filter_bank``, then applies Granite's own
log compression and frame stacking unchanged (the parent's code path after the mel).

Imported lazily (by the family's processor assembly and the tiny builder), so importing
torch and transformers at module level is fine here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.models.granite_speech.feature_extraction_granite_speech import (
    GraniteSpeechFeatureExtractor,
)

__all__ = ["TorchGraniteSpeechFeatureExtractor", "granite_mel_filters"]


def granite_mel_filters(sampling_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """[n_fft // 2 + 1, n_mels] filters of torchaudio's MelSpectrogram defaults (HTK, no norm)."""
    return mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=sampling_rate / 2,
        sampling_rate=sampling_rate,
        norm=None,
        mel_scale="htk",
    )


class TorchGraniteSpeechFeatureExtractor(GraniteSpeechFeatureExtractor):
    """``GraniteSpeechFeatureExtractor`` with its torchaudio mel replaced by torch.stft.

    Same constructor arguments, same saved config (it serialises under the parent's class
    name, so a checkpoint written with it is the real model's layout), same outputs.
    """

    def __init__(
        self,
        sampling_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 80,
        projector_window_size: int = 15,
        projector_downsample_rate: int = 5,
        padding_value: float = 0.0,
        **kwargs: Any,
    ) -> None:
        # The parent's __init__ requires torchaudio before doing anything else, so this
        # repeats its body (transformers 5.x) minus the torchaudio transform.
        feature_size = n_mels if kwargs.get("feature_size") is None else kwargs.pop("feature_size")
        SequenceFeatureExtractor.__init__(
            self,
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            **kwargs,
        )
        self.sampling_rate = sampling_rate
        self.melspec_kwargs = {
            "sample_rate": sampling_rate,
            "n_fft": n_fft,
            "win_length": win_length,
            "hop_length": hop_length,
            "n_mels": n_mels,
        }
        self.mel_filters = torch.from_numpy(
            granite_mel_filters(sampling_rate, n_fft, n_mels).astype(np.float32)
        )
        self.projector_window_size = projector_window_size
        self.projector_downsample_rate = projector_downsample_rate

    def __call__(self, audios: Any, device: str | None = "cpu") -> BatchFeature:
        """The parent's ``__call__`` without its torchaudio check."""
        batched_audio, audio_lengths = self._get_audios_and_audio_lengths(audios)
        features = self._extract_mel_spectrograms(batched_audio, device=device)
        sizes = self._get_num_audio_features(audio_lengths)
        mask = torch.arange(max(sizes)).view(1, -1) < torch.tensor(sizes).view(-1, 1)
        return BatchFeature(
            data={
                "input_features": features,
                "audio_embed_sizes": sizes,
                "input_features_mask": mask,
            }
        )

    def _mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Power mel spectrogram [batch, frames, n_mels], as torchaudio's MelSpectrogram."""
        kw = self.melspec_kwargs
        window = torch.hann_window(kw["win_length"], device=audio.device)
        spec = torch.stft(
            audio,
            n_fft=kw["n_fft"],
            hop_length=kw["hop_length"],
            win_length=kw["win_length"],
            window=window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = spec.abs().pow(2.0)  # [batch, freq, frames]
        return torch.matmul(power.transpose(-1, -2), self.mel_filters.to(audio.device))

    def _extract_mel_spectrograms(self, audio: torch.Tensor, device: str | None = "cpu"):
        """Granite's log-mel: log10, 8-decade floor below the clip's max, stacked frame pairs."""
        if device is not None:
            audio = audio.to(device)
        bsz = audio.shape[0]
        with torch.no_grad():
            logmel = self._mel(audio.float()).clip_(min=1e-10).log10_()
            mx = logmel.amax(dim=(-2, -1), keepdim=True)
            logmel = torch.maximum(logmel, mx - 8.0).div_(4).add_(1)
            if logmel.shape[1] % 2 == 1:  # drop the last frame if odd
                logmel = logmel[:, :-1]
            return logmel.reshape(bsz, -1, 2 * logmel.shape[-1])

    def to_dict(self) -> dict[str, Any]:
        """The parent's config: checkpoints saved with this class look like the real ones."""
        output = super().to_dict()
        output["feature_extractor_type"] = GraniteSpeechFeatureExtractor.__name__
        return output
