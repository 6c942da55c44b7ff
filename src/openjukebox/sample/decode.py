"""The per-token step of ancestral sampling, with static shapes, compiled once per prior and batch size.

A window's state lives in preallocated tensors (`DecodeState`): the whole token sequence of the window, x_cond,
the start embedding, one KV cache per layer, the samples' noise keys. The step reads the previous token from the
sequence, runs the transformer at a position given as a (1,) tensor, filters the logits, draws with counter-based
noise (`noise.py`) and writes the drawn token back, all on the device: no shape depends on the position, no value
goes to the host, and nothing but the position changes between calls. So `torch.compile` traces it once per prior
and batch size (inductor's C++ backend on CPU), a CUDA graph captures it once per window on a GPU, and the next
window refills the same tensors instead of tracing anew.
"""

from __future__ import annotations

import types
import warnings
import weakref
from dataclasses import dataclass

import torch
import torch._inductor.config as inductor_config

from ..errors import ConfigError
from ..prior.attention import KVCache
from ..prior.conditioning import Labels
from ..prior.model import Prior
from .noise import code_keys, draw, exponential_noise, sample_keys
from .request import Filters


def filter_logits(logits: torch.Tensor, filters: Filters = Filters()) -> torch.Tensor:
    """Logits (batch, vocabulary) scaled by 1/temperature with everything outside the top k / nucleus p set to
    −inf; shapes never depend on the values, so it compiles into the step."""
    logits = logits.float() / filters.temperature
    if filters.top_k > 0:
        kth = torch.topk(logits, min(filters.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < filters.top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens ranked above it already cover p.
        drop = probs.cumsum(-1) - probs > filters.top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


@dataclass
class DecodeState:
    """Everything a step reads or writes, allocated once for a prior and batch size (T = the transformer's n_ctx):

    tokens (batch, T) int64: the window's sequence (a merged prior's lyrics, then shifted codes), given or drawn;
    cond (batch, T, width): x_cond; start (batch, width): the first position's input;
    caches: one per layer; noise_keys (batch,) int64: each sample's; code_keys (vocabulary,) int64: each code's;
    code_offset (1,) int64: the song position of sequence position 0 (window start − lead), so that the noise
    follows a token's place in the song."""

    tokens: torch.Tensor
    cond: torch.Tensor
    start: torch.Tensor
    caches: list[KVCache]
    noise_keys: torch.Tensor
    code_keys: torch.Tensor
    code_offset: torch.Tensor

    @classmethod
    def allocate(cls, prior: Prior, batch: int) -> DecodeState:
        config = prior.config
        n_ctx, width = config.transformer.n_ctx, config.transformer.width
        like = prior.pos_emb
        states = like.new_zeros(batch, config.n_tokens, width) if config.lyrics_encoder is not None else None
        long = dict(dtype=torch.long, device=like.device)
        return cls(torch.zeros(batch, n_ctx, **long), like.new_zeros(batch, n_ctx, width), like.new_zeros(batch, width),
                   prior.new_caches(batch, states), torch.zeros(batch, **long),
                   code_keys(prior.x_out.out_features, like.device), torch.zeros(1, **long))

    def tensors(self) -> list[torch.Tensor]:
        return [self.tokens, self.cond, self.start, self.noise_keys, self.code_keys, self.code_offset,
                *(t for cache in self.caches for t in (cache.keys, cache.values))]


def decode_step(prior: Prior, state: DecodeState, pos: torch.Tensor, filters: Filters,
                noise: torch.Tensor | None = None) -> torch.Tensor:
    """Draw the token at sequence position `pos` ((1,) int64) into state.tokens; `noise` (batch, vocabulary), that
    position's exponential_noise when already computed. Returns the logits drawn from (batch, vocabulary), before
    filtering (on CUDA, valid until the next step)."""
    previous = state.tokens.index_select(1, (pos - 1).clamp(min=0))[:, 0]
    logits = prior.step(previous, pos, state.cond, state.caches, state.start)
    probs = torch.softmax(filter_logits(logits, filters), dim=-1)
    if noise is None:
        noise = exponential_noise(state.noise_keys, pos + state.code_offset, state.code_keys)[:, 0]
    state.tokens.index_copy_(1, pos, draw(probs, noise)[:, None])
    return logits


EAGER_NOISE_CHUNK = 64

# compile="auto": compile when a call has at least this many steps (tokens of each sample) to draw. On CPU (2
# cores), compiling a prior of the embedded model (6 layers, width 128) takes ~20 s, plus ~30 s once per process,
# and saves ~0.45 ms of its ~0.65 ms a token: it pays from ~45 000-90 000 steps (docs/sampling.md).
# On CUDA an eager step is bound by its kernel launches (some 1 500 at the released depth of 72 layers) and a CUDA
# graph replays them in one: the figure is an estimate until benchmarks/gpu_suite.py has measured it.
COMPILE_PAYS_FROM = {"cpu": 50_000, "cuda": 4_000}
_unavailable: list[str] = []  # why compiling failed here, once known: later steps go eager without trying again


# How a compiled step runs on CUDA: "cuda-graph" captures the eager step once per window size and replays it (set-up:
# one step); "inductor" is torch.compile with mode="reduce-overhead" (fused kernels, then also replayed as a CUDA
# graph; set-up: minutes at the released sizes). benchmarks/gpu_suite.py measures both.
CUDA_COMPILED_STEP = "cuda-graph"


# On CPU the step's matrix-vector products dominate: inductor's own GEMM kernels over weights packed at compile time
# (freezing + max_autotune with the CPP backend), with the guards checked once per window, make the compiled step
# 3.3x faster than plain torch.compile (docs/sampling.md).
_CPU_OPTIONS = {"freezing": True, "max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"}
_compiled: weakref.WeakKeyDictionary[Prior, tuple[str, int, CompiledStep]] = weakref.WeakKeyDictionary()


def weights_version(prior: Prior) -> int:
    """Changes whenever a weight of the prior is changed in place (training, load_state_dict)."""
    return sum(p._version for p in prior.parameters())


class CompiledStep:
    """decode_step compiled for one prior on its device; called like decode_step, compiling on the first call."""

    def __init__(self, device: torch.device) -> None:
        # dynamo reads `freezing` while tracing, so the options are set around the call rather than passed in.
        self.options = _CPU_OPTIONS if device.type == "cpu" else {}
        mode = "reduce-overhead" if device.type == "cuda" else None
        # dynamo keeps compiled code per code object, and code with frozen weights must serve only its own prior:
        # each CompiledStep compiles a copy of decode_step with a code object of its own.
        own = types.FunctionType(decode_step.__code__.replace(), decode_step.__globals__, "decode_step",
                                 decode_step.__defaults__)
        self.function = torch.compile(own, fullgraph=True, dynamic=False, mode=mode)

    def __call__(self, prior: Prior, state: DecodeState, pos: torch.Tensor, filters: Filters) -> torch.Tensor:
        with inductor_config.patch(self.options):
            return self.function(prior, state, pos, filters)


def compiled_decode_step(prior: Prior) -> CompiledStep:
    """The prior's compiled step: on CPU its weights are frozen into the compiled code, so a prior whose weights
    changed since is compiled anew; on CUDA it runs with mode="reduce-overhead" (a CUDA graph)."""
    device, version = prior.pos_emb.device, weights_version(prior)
    known = _compiled.get(prior)
    if known is None or known[:2] != (device.type, version):
        known = _compiled[prior] = (device.type, version, CompiledStep(device))
    return known[2]


def compile_pays(compile: bool | str, device: torch.device, steps: int) -> bool:
    """Whether to compile the step for a call of `steps` steps on `device` (a step draws a token of every sample):
    `compile` itself when it is True or False; for "auto", when the call is long enough to pay for the compilation
    (COMPILE_PAYS_FROM)."""
    if compile == "auto":
        return steps >= COMPILE_PAYS_FROM.get(device.type, 10**12)
    if not isinstance(compile, bool):
        raise ConfigError(f"compile must be True, False or 'auto', got {compile!r}")
    return compile


class Decoder:
    """Token-by-token sampling of one prior at one batch size: the state, and the step that advances it."""

    def __init__(self, prior: Prior, batch: int, filters: Filters, compile: bool) -> None:
        self.prior, self.filters = prior, filters
        self.state = DecodeState.allocate(prior, batch)
        device = prior.pos_emb.device
        self.positions = torch.arange(prior.config.transformer.n_ctx, device=device)
        cuda = device.type == "cuda"
        self.mode = "eager" if not compile or _unavailable else CUDA_COMPILED_STEP if cuda else "inductor"
        if self.mode == "inductor" and cuda:
            for t in self.state.tensors():  # CUDA graphs replay fixed addresses: these tensors are refilled in place
                torch._dynamo.mark_static_address(t)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.position = torch.zeros(1, dtype=torch.long, device=device)  # where the captured step draws next

    def load_window(self, prefix: torch.Tensor, n_tokens: int, labels: Labels | None,
                    upper_codes: torch.Tensor | None, seed: int, first_code: int = 0,
                    sample_ids: torch.Tensor | None = None) -> tuple[int, int]:
        """Refill the state for a window of n_tokens codes whose first prefix.shape[1] (batch, P) are given, the
        known tokens fed in one batched pass; returns the sequence positions [first, last) left to draw."""
        prior, state, config = self.prior, self.state, self.prior.config
        batch = prefix.shape[0]
        given = prefix + config.code_shift
        if config.merged_lyrics:
            given = torch.cat([prior.lyrics(labels), given], dim=1)
        first, last = given.shape[1], config.lead + n_tokens
        state.cond[:, :last] = prior.condition(labels, upper_codes, batch, n_tokens)
        state.start.copy_(prior.start(labels, batch))
        if config.lyrics_encoder is not None:
            prior.transformer.load_encoder_states(state.caches, prior.encoder_states(labels))
        ids = torch.arange(batch) if sample_ids is None else sample_ids
        state.noise_keys.copy_(sample_keys(seed, ids.to(torch.long)))
        state.code_offset.fill_(first_code - config.lead)
        state.tokens[:, :first] = given
        if first:
            prior.prefill(given, state.cond, state.caches, state.start)
        return first, last

    def codes(self, last: int) -> torch.Tensor:
        """The window's codes (batch, last − lead), given and drawn: a drawn lyric character becomes code 0."""
        config = self.prior.config
        return (self.state.tokens[:, config.lead: last] - config.code_shift).clamp_min(0)

    def run(self, first: int, last: int) -> None:
        """Draw the tokens at sequence positions first … last − 1; positions before `first` must be in the state."""
        if self.mode == "cuda-graph":
            self._graph_steps(first, last)
            return
        if self.mode == "inductor" and self._compiled_steps(first, last):
            return
        for chunk in range(first, last, EAGER_NOISE_CHUNK):
            # Uncompiled, every op costs its dispatch: the noise of many positions at once costs what one does.
            positions = self.positions[chunk: min(chunk + EAGER_NOISE_CHUNK, last)]
            noise = exponential_noise(self.state.noise_keys, positions + self.state.code_offset, self.state.code_keys)
            for i in range(positions.shape[0]):
                decode_step(self.prior, self.state, positions[i: i + 1], self.filters, noise[:, i])

    def _compiled_steps(self, first: int, last: int) -> bool:
        """Run the compiled step over the positions; False (after one warning, with nothing drawn) where this
        machine cannot compile, e.g. without a C++ compiler."""
        if first >= last:
            return True
        step = compiled_decode_step(self.prior)
        try:  # the first call compiles, where it has not yet
            step(self.prior, self.state, self.positions[first: first + 1], self.filters)
        except Exception as e:  # noqa: BLE001 -- told apart below: only toolchain failures mean eager
            if not _is_compile_failure(e):
                raise
            reason = _first_line(e)
            _unavailable.append(reason)
            warnings.warn(f"torch.compile is not available here ({reason}); sampling without it (slower)",
                          stacklevel=3)
            self.mode = "eager"
            return False
        # Every later call passes the same tensors, only the position's value changes: the guards that chose the
        # compiled code above need not be checked again at every token (they cost as much as a small step).
        with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
            for p in range(first + 1, last):
                step.function(self.prior, self.state, self.positions[p: p + 1], self.filters)
        return True

    def _graph_steps(self, first: int, last: int) -> None:
        """Replay a CUDA graph of the step, which reads its position from `self.position` and advances it. The
        graph is captured at the first call: that call's first steps (up to 3) run eagerly on a side stream
        (capturing needs warmed-up kernels and libraries), then the step is captured (capture runs nothing)."""
        if first >= last:
            return
        if self.graph is None:
            warm_up = min(3, last - first)
            self.position.fill_(first)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(warm_up):
                    self._step_and_advance()
            torch.cuda.current_stream().wait_stream(side)
            first += warm_up
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._step_and_advance()
        self.position.fill_(first)
        for _ in range(first, last):
            self.graph.replay()

    def _step_and_advance(self) -> None:
        decode_step(self.prior, self.state, self.position, self.filters)
        self.position.add_(1)


def _is_compile_failure(error: Exception) -> bool:
    """A failure of torch.compile's toolchain, which leaves the state untouched (nothing ran yet)."""
    from torch._dynamo.exc import BackendCompilerFailed

    return isinstance(error, BackendCompilerFailed) or type(error).__name__ in ("InductorError", "CppCompileError")


def _first_line(error: Exception) -> str:
    """The line of a compile failure that names its cause (dynamo wraps it in lines about itself)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("backend=", "Set TORCH", "You can suppress"))]
    return (useful or lines or [type(error).__name__])[0][:200]
