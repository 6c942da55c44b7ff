"""A prior over one level's codes: top-level prior (labels + timing) or upsampler (labels + the level above).

Input at position t is the embedding of code t−1 (the first position gets the labels, or a learned start
token without labels) + a learned position embedding + the conditioning x_cond; the transformer's output
predicts code t. As released, a non-merged decoder ties the output layer to the code embedding and adds
x_cond again before it.

Top priors may also sing given lyrics, in one of the two released structures: a separate lyrics encoder whose
states the transformer's encoder-decoder layers read (`5b_lyrics`), or one merged sequence, the window's lyric
tokens followed by its music codes, over a merged vocabulary (`1b_lyrics`: lyric tokens 0…n_vocab−1, codes
shifted up by n_vocab; x_cond is zero over the lyrics).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config_file import check_fields
from ..errors import ConfigError
from .attention import KVCache
from .attention import ENCODER_DECODER, PREFIX
from .conditioning import Labels, LabelEmbedding, TimingEmbedding, UpsamplerConditioner
from .lyrics_encoder import LyricsEncoder
from .transformer import Transformer, TransformerConfig


def next_token_loss(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in nats per token of teacher-forced logits (batch, T, bins) against codes (batch, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), codes.reshape(-1))


@dataclass(frozen=True)
class PriorConfig:
    level: int  # 0, 1 (upsamplers) or 2 (top)
    bins: int  # codebook size of this level
    transformer: TransformerConfig
    hop_length: int  # audio samples per token at this level
    n_artists: int = 0  # 0 with n_genres 0: an unconditional model
    n_genres: int = 0
    max_genres: int = 1
    timing_bins: int = 0  # 0: no timing signal (upsamplers never have one, as released)
    min_duration: float = 0.0  # seconds, the range of the total-length embedding
    max_duration: float = 600.0
    sample_rate: int = 44100
    merged_decoder: bool = False
    upper_bins: int = 0  # upsamplers: codebook size of the level above (0 for the top level)
    cond_width: int = 0
    cond_depth: int = 0
    cond_downs: int = 2  # the level above has 2**cond_downs fewer tokens
    cond_dilation_cycle: int = 8
    cond_res_scale: bool = False
    n_vocab: int = 0  # lyric characters (0: no lyrics)
    n_tokens: int = 0  # lyric tokens per window
    lyrics_encoder: TransformerConfig | None = None  # separate encoder; None with n_tokens > 0: merged sequence
    lyrics_loss_fraction: float = 0.4  # weight of the next-character loss of the lyrics (released: 0.4)
    alignment_layer: int = -1  # the layer whose attention to the lyrics aligns them (−1: the last that reads them)
    alignment_head: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "prior config", ("bins", "hop_length", "max_genres", "sample_rate", "max_duration"))
        if self.level not in (0, 1, 2):
            raise ConfigError(f"prior config: level must be 0, 1 or 2, got {self.level}")
        if min(self.n_artists, self.n_genres, self.timing_bins, self.n_vocab, self.n_tokens, self.upper_bins,
               self.cond_width, self.cond_depth) < 0:
            raise ConfigError("prior config: sizes cannot be negative")
        if (self.n_artists > 0) != (self.n_genres > 0):
            raise ConfigError("prior config: give both n_artists and n_genres, or neither (unconditional)")
        if self.upper_bins and self.timing_bins:
            raise ConfigError("prior config: upsamplers have no timing signal")
        if (self.n_tokens > 0) != (self.n_vocab > 0):
            raise ConfigError("prior config: a lyrics prior needs both n_tokens and n_vocab")
        if self.lyrics_encoder is not None and (self.lyrics_encoder.n_ctx != self.n_tokens or not self.n_tokens):
            raise ConfigError(f"prior config: the lyrics encoder's context must be n_tokens ({self.n_tokens})")
        if self.transformer.has_encoder_decoder != (self.lyrics_encoder is not None):
            raise ConfigError("prior config: encoder-decoder layers and a lyrics encoder go together")
        if self.merged_lyrics and (self.transformer.prefix_len != self.n_tokens
                                   or self.transformer.n_ctx <= self.n_tokens):
            raise ConfigError("prior config: a merged lyrics prior's transformer spans the lyrics "
                              f"(prefix_len {self.n_tokens}) and the music")

    def lyrics_layers(self) -> list[int]:
        """The encoder-decoder or prefix layers: those whose attention can show which characters are sung."""
        return [d for d, p in enumerate(self.transformer.layer_patterns()) if p in (ENCODER_DECODER, PREFIX)]

    def alignment_layer_index(self, layer: int | None = None) -> int:
        """The encoder-decoder or prefix layer whose attention shows which characters are being sung: `layer`, or
        the configured one."""
        reading = self.lyrics_layers()
        layer = self.alignment_layer if layer is None else layer
        layer = reading[-1] if reading and layer == -1 else layer
        if layer not in reading:
            raise ConfigError(f"alignment layer {layer} does not attend to the lyrics (layers that do: {reading})")
        return layer

    @property
    def conditioned_on_labels(self) -> bool:
        return self.n_artists > 0

    @property
    def merged_lyrics(self) -> bool:
        """Lyric tokens and codes in one sequence, as the released 1b_lyrics."""
        return self.n_tokens > 0 and self.lyrics_encoder is None

    @property
    def lead(self) -> int:
        """Sequence positions before the first code: the lyrics of a merged sequence."""
        return self.n_tokens if self.merged_lyrics else 0

    @property
    def code_shift(self) -> int:
        """Offset of code 0 in the model's vocabulary: after the lyric characters of a merged vocabulary."""
        return self.n_vocab if self.merged_lyrics else 0

    @property
    def n_ctx(self) -> int:
        """Codes per window."""
        return self.transformer.n_ctx - self.lead

    @property
    def window_samples(self) -> int:
        return self.n_ctx * self.hop_length


class Prior(nn.Module):
    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        width = config.transformer.width
        vocabulary = config.code_shift + config.bins
        self.x_emb = nn.Embedding(vocabulary, width)
        self.pos_emb = nn.Parameter(torch.randn(config.transformer.n_ctx, width) * 0.01)
        if config.conditioned_on_labels:
            self.labels = LabelEmbedding(config.n_artists, config.n_genres, width)
        else:
            self.start_token = nn.Parameter(torch.randn(1, width) * 0.01)
        if config.timing_bins:
            self.timing = TimingEmbedding(config.timing_bins, config.min_duration * config.sample_rate,
                                          config.max_duration * config.sample_rate, width)
        if config.upper_bins:
            self.conditioner = UpsamplerConditioner(config.upper_bins, width, config.cond_width, config.cond_depth,
                                                    config.cond_downs, config.cond_dilation_cycle, config.cond_res_scale)
        if config.lyrics_encoder is not None:
            self.lyrics_encoder = LyricsEncoder(config.lyrics_encoder, config.n_vocab, width)
        self.transformer = Transformer(config.transformer)
        self.x_out = nn.Linear(width, vocabulary, bias=False)
        if not config.merged_decoder:
            self.x_out.weight = self.x_emb.weight
        # Small embeddings (GPT-style std 0.02) keep the initial logits near uniform instead of N(0, width).
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        if config.merged_decoder:
            nn.init.normal_(self.x_out.weight, std=0.02)

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
             ) -> Prior:
        """A saved prior: a run's checkpoint folder or a bundle's prior_{level} folder (prior/loading.py)."""
        from .loading import load_prior

        return load_prior(Path(path), device, dtype)

    def saved_state(self) -> dict[str, torch.Tensor]:
        """The state dict without the tied output weight (safetensors stores each tensor once)."""
        state = self.state_dict()
        if not self.config.merged_decoder:
            del state["x_out.weight"]
        return state

    def load_saved_state(self, state: dict[str, torch.Tensor], assign: bool = False) -> None:
        """Load what saved_state() wrote (strictly), re-tying the output layer to the code embedding. With
        `assign` the tensors become the parameters (no copy: for models built on the meta device)."""
        missing, unexpected = self.load_state_dict(state, strict=False, assign=assign)
        tied = set() if self.config.merged_decoder else {"x_out.weight"}
        if unexpected or set(missing) - tied:
            raise RuntimeError(f"missing weights {sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]}")
        if not self.config.merged_decoder:
            self.x_out.weight = self.x_emb.weight

    def start(self, labels: Labels | None, batch: int) -> torch.Tensor:
        """(batch, width): the first position's input."""
        if self.config.conditioned_on_labels:
            if labels is None:
                raise ConfigError("this prior is conditioned on artist and genre: give labels")
            return self.labels(labels)
        return self.start_token.expand(batch, -1)

    def lyrics(self, labels: Labels | None) -> torch.Tensor:
        """The window's lyric tokens (batch, n_tokens)."""
        if labels is None or labels.lyrics is None or labels.lyrics.shape[-1] != self.config.n_tokens:
            raise ConfigError(f"this prior sings lyrics: give labels with {self.config.n_tokens} lyric tokens")
        return labels.lyrics

    def encoder_states(self, labels: Labels | None) -> torch.Tensor | None:
        """What the encoder-decoder layers attend to (batch, n_tokens, width), for a separate lyrics encoder."""
        if self.config.lyrics_encoder is None:
            return None
        return self.lyrics_encoder(self.lyrics(labels))

    def condition(self, labels: Labels | None, upper_codes: torch.Tensor | None, batch: int, n: int) -> torch.Tensor:
        """x_cond (batch, lead + n, width) for the lyrics and the first n codes of a window: timing or
        upsampled upper codes, else 0 (always 0 over the lyrics)."""
        width = self.config.transformer.width
        cond = self.pos_emb.new_zeros(batch, n, width)
        if self.config.timing_bins:
            if labels is None:
                raise ConfigError("this prior uses the timing signal: give labels with total_length and offset")
            cond = cond + self.timing(labels, self.config.window_samples, self.config.n_ctx, n)
        if self.config.upper_bins:
            if upper_codes is None:
                raise ConfigError(f"the level-{self.config.level} upsampler needs the codes of the level above")
            cond = cond + self.conditioner(upper_codes)[:, :n]
        return torch.cat([cond.new_zeros(batch, self.config.lead, width), cond], dim=1)

    def inputs(self, codes: torch.Tensor, labels: Labels | None, upper_codes: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The transformer's input (batch, lead + T, width) for teacher forcing codes (batch, T): each position
        gets the token before it (the start embedding first), its position and x_cond; also x_cond itself and the
        lyrics encoder's states."""
        b, t = codes.shape
        tokens = codes + self.config.code_shift
        if self.config.merged_lyrics:
            tokens = torch.cat([self.lyrics(labels), tokens], dim=1)
        x = torch.cat([self.start(labels, b)[:, None], self.x_emb(tokens[:, :-1])], dim=1)
        cond = self.condition(labels, upper_codes, b, t)
        return x + self.pos_emb[: tokens.shape[1]] + cond, cond, self.encoder_states(labels)

    def forward(self, codes: torch.Tensor, labels: Labels | None = None, upper_codes: torch.Tensor | None = None,
                with_lyrics: bool = False, record_layer: int | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits (batch, lead + T, vocabulary) at every position of the sequence for codes
        (batch, T), T ≤ n_ctx. Without lyrics in the sequence that is (batch, T, bins). With `with_lyrics`, also
        the next-character logits of the lyrics (batch, n_tokens, n_vocab), which a lyrics prior learns too."""
        x, cond, states = self.inputs(codes, labels, upper_codes)
        h = self.transformer(x, states, record_layer)
        if not self.config.merged_decoder:
            h = h + cond
        logits = self.x_out(h)
        if not with_lyrics:
            return logits
        if not self.config.n_tokens:
            raise ConfigError("this prior has no lyrics")
        lyric_logits = logits[:, : self.config.lead] if self.config.merged_lyrics else self.lyrics_encoder.logits(states)
        return logits, lyric_logits

    @torch.no_grad()
    def activations(self, codes: torch.Tensor, labels: Labels | None = None, layer: int | None = None,
                    upper_codes: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, T, width): the output of transformer layer `layer` (1 … depth; default the middle one, which
        Castellon et al. 2021 found the best features for music tagging) at each position of codes (batch, T),
        teacher-forced as in forward(). Layers above it are never run; a lyrics prefix's positions are left out."""
        depth = self.config.transformer.depth
        layer = depth // 2 if layer is None else layer
        if not 1 <= layer <= depth:
            raise ConfigError(f"layer (--layer) {layer}: this prior has layers 1 to {depth}")
        x, _, states = self.inputs(codes, labels, upper_codes)
        return self.transformer(x, states, layers=layer)[:, self.config.lead:]

    @torch.no_grad()
    def lyrics_attention(self, codes: torch.Tensor, labels: Labels, layer: int | None = None,
                         head: int | None = None) -> torch.Tensor:
        """(batch, T, n_tokens): how much each code of a window attends to each of its lyric tokens, in the
        alignment layer and head (paper section 5.3), or in `layer` and `head` when given."""
        layer = self.config.alignment_layer_index(layer)
        head = self.config.alignment_head if head is None else head
        if not 0 <= head < self.config.transformer.heads:
            raise ConfigError(f"alignment head {head}: this prior has heads 0 to {self.config.transformer.heads - 1}")
        self.forward(codes, labels, record_layer=layer)
        attention = self.transformer.blocks[layer].attn
        weights, attention.recorded = attention.recorded[:, head], None
        return weights[:, self.config.lead:, : self.config.n_tokens]

    def loss(self, codes: torch.Tensor, labels: Labels | None = None,
             upper_codes: torch.Tensor | None = None) -> torch.Tensor:
        """Mean negative log-likelihood of the codes in nats per token."""
        return self.codes_loss(self.forward(codes, labels, upper_codes), codes)

    def codes_loss(self, logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Nats per code of forward()'s logits."""
        return next_token_loss(logits[:, self.config.lead:], codes + self.config.code_shift)

    def training_loss(self, codes_loss: torch.Tensor, lyrics_loss: torch.Tensor | None) -> torch.Tensor:
        """The released weighting: by tokens, the lyrics part scaled by lyrics_loss_fraction."""
        if lyrics_loss is None:
            return codes_loss
        n, m = self.config.n_tokens, self.config.n_ctx
        return (self.config.lyrics_loss_fraction * lyrics_loss * n + codes_loss * m) / (n + m)

    def new_caches(self, batch: int, encoder_states: torch.Tensor | None = None) -> list[KVCache]:
        return self.transformer.new_caches(batch, self.pos_emb.device, self.pos_emb.dtype, encoder_states)

    def prefill(self, given: torch.Tensor, cond: torch.Tensor, caches: list[KVCache], start: torch.Tensor) -> None:
        """Feed a window's known tokens (batch, G) (lyric characters or shifted codes) in one pass, so that
        `step` can go on from position G."""
        g = given.shape[1]
        x = torch.cat([start[:, None], self.x_emb(given[:, :-1])], dim=1)
        self.transformer.prefill(x + self.pos_emb[:g] + cond[:, :g], caches)

    def step(self, previous: torch.Tensor, pos: torch.Tensor, cond: torch.Tensor, caches: list[KVCache],
             start: torch.Tensor) -> torch.Tensor:
        """Logits (batch, vocabulary) for sequence position `pos` ((1,) int64), given the token (lyric character or
        shifted code) at pos−1 (batch,), ignored at pos 0 where the start embedding goes in, and the window's
        x_cond (batch, ≥ pos + 1, width). Static shapes: the same traced step serves every position."""
        x = torch.where(pos == 0, start, self.x_emb(previous))[:, None]
        c = cond.index_select(1, pos)
        h = self.transformer.step(x + self.pos_emb.index_select(0, pos) + c, caches, pos)
        if not self.config.merged_decoder:
            h = h + c
        return self.x_out(h)[:, 0]
