"""The policy being tuned (a causal LM with a value head) and its frozen reference.

Critic design: the value head is one linear layer on the policy's last hidden state (a shared
trunk), not a separate critic model. A separate critic would double the weights in memory and the
forward passes of every update; with LoRA (Vertex's policy rank is 1) the trunk is frozen anyway,
so the critic reads the same features the policy does and only the small adapters are shared.
`value_loss_coeff` keeps the value gradient from dominating those shared weights.

Precision: trainable weights (LoRA adapters, the value head, or the whole model when
`lora_rank` is 0) are held in float32; frozen weights in the placement's dtype (bf16 on CUDA).
Forward passes run under autocast to the placement's dtype, so AdamW never updates bf16 weights.
"""

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from components.common.log_probs import position_ids_for, token_log_probs
from components.common.models import Placement
from components.common.sharding import decoder_layers, shard_frozen_model
from components.tune_policy.config import PolicyTuningConfig


class PolicyWithValueHead(nn.Module):
    """A causal LM (optionally wrapped by peft) plus a scalar value head on its last hidden state.

    Without a value head (`with_value_head=False`: GRPO and RLOO need no critic) the forward pass
    returns None for the values and asks the model for no hidden states.

    `checkpointed_layers`: decoder layers whose activations a forward pass that records gradients does
    not keep; the backward recomputes them (transformers' gradient checkpointing, non-reentrant). It
    checkpoints a layer only while the layer's own `training` flag is set, so the flag is set on those
    layer objects alone, for that forward pass: their dropout modules stay in eval mode, and generation
    keeps its KV cache.
    """

    def __init__(self, language_model: nn.Module, hidden_size: int, placement: Placement, with_value_head: bool = True,
                 checkpointed_layers: list[nn.Module] = ()):
        super().__init__()
        self.language_model = language_model
        self.checkpointed_layers = list(checkpointed_layers)
        self.value_head = None
        if with_value_head:
            self.value_head = nn.Linear(hidden_size, 1, dtype=torch.float32)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        self.placement = placement

    @property
    def uses_lora(self) -> bool:
        from peft import PeftModel

        return isinstance(self.language_model, PeftModel)

    def autocast(self):
        """Autocast to the placement's dtype where it is not float32 (bf16 on CUDA)."""
        if self.placement.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.placement.device.type, dtype=self.placement.dtype)

    @contextlib.contextmanager
    def _recomputing_activations(self):
        layers = self.checkpointed_layers if torch.is_grad_enabled() else []
        for layer in layers:
            layer.training = True
        try:
            yield
        finally:
            for layer in layers:
                layer.training = False

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_length: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits predicting each of the last `response_length` tokens (a view of the model's output, in
        its dtype: no float32 copy), and the value before each (None without a value head).

        The value at response position t estimates the return of the state prompt + response[:t],
        read from the same hidden state that produces the logits of token t.
        """
        with self.autocast(), self._recomputing_activations():
            output = self.language_model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids_for(attention_mask),
                logits_to_keep=response_length + 1,
                output_hidden_states=self.value_head is not None,
                use_cache=False,
            )
        logits = output.logits[:, :-1]
        if self.value_head is None:
            return logits, None
        hidden = output.hidden_states[-1][:, -(response_length + 1) : -1]
        values = self.value_head(hidden.float()).squeeze(-1)
        return logits, values


def load_policy(source: str, config: PolicyTuningConfig, placement: Placement) -> PolicyWithValueHead:
    """The initial policy: full weights in float32, or frozen weights plus LoRA adapters; a value head
    only for PPO."""
    from transformers import AutoModelForCausalLM

    if config.lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        base = AutoModelForCausalLM.from_pretrained(source, dtype=placement.dtype)
        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",  # every attention and MLP projection, not the LM head
            bias="none",
            task_type="CAUSAL_LM",
        )
        language_model = get_peft_model(base, lora)  # adapters are created in float32
    else:
        language_model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    checkpointed_layers = []
    if config.activation_checkpointing:
        pretrained = language_model.get_base_model() if config.lora_rank > 0 else language_model
        pretrained.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        checkpointed_layers = decoder_layers(pretrained)
    policy = PolicyWithValueHead(
        language_model, language_model.config.hidden_size, placement, with_value_head=not config.grouped,
        checkpointed_layers=checkpointed_layers,
    )
    # eval(): no dropout anywhere, so the rollout and the update see the same policy.
    return policy.to(placement.device).eval()


ReferenceLogprobs = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def make_reference(
    policy: PolicyWithValueHead, source: str, config: PolicyTuningConfig, placement: Placement, sharded: bool = False
) -> ReferenceLogprobs | None:
    """A function (input_ids, attention_mask, response_ids) -> reference log-probs, or None.

    None when `kl_coeff` is 0: no reference is loaded at all. With LoRA the reference is the
    policy with its adapters disabled (the adapters start at zero, so that is the initial policy);
    otherwise a second, frozen copy of the initial weights, loaded as the policy's are (float32,
    computing under the same autocast), so that the KL to it is exactly 0 before the first update.
    `sharded`: that copy is sharded between the training processes as the policy is (each process
    then runs the same number of forward passes: equal shares of every batch).
    """
    if config.kl_coeff == 0:
        return None
    if policy.uses_lora:
        reference_model = policy.language_model
        adapters_disabled = reference_model.disable_adapter
    else:
        from transformers import AutoModelForCausalLM

        reference_model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        reference_model.to(placement.device).eval().requires_grad_(False)
        if sharded:
            shard_frozen_model(reference_model)
        adapters_disabled = contextlib.nullcontext

    @torch.no_grad()
    def reference_logprobs(input_ids, attention_mask, response_ids):
        response_length = response_ids.shape[1]
        with adapters_disabled(), policy.autocast():
            logits = reference_model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids_for(attention_mask),
                logits_to_keep=response_length + 1,
                use_cache=False,
            ).logits[:, :-1]
        return token_log_probs(logits, response_ids, config.temperature)

    return reference_logprobs
