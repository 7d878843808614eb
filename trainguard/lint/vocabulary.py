"""What PyTorch's (and its ecosystem's) names mean to the rules.

Everything here works on qualified names produced by `ImportMap.qualname` and on identifiers;
the name-based guesses are used only for values the file never shows being made (function
parameters, attributes set elsewhere), and such values start with unknown state.
"""

from __future__ import annotations

import re
from functools import lru_cache

LOSS_FUNCTIONS = {
    # functional name -> loss family; nn class names map onto the same families below.
    "cross_entropy": "cross_entropy",
    "nll_loss": "nll",
    "binary_cross_entropy": "bce",
    "binary_cross_entropy_with_logits": "bce_with_logits",
    "mse_loss": "mse",
    "l1_loss": "l1",
    "smooth_l1_loss": "smooth_l1",
    "huber_loss": "huber",
    "kl_div": "kl_div",
}
LOSS_CLASSES = {
    "CrossEntropyLoss": "cross_entropy",
    "NLLLoss": "nll",
    "BCELoss": "bce",
    "BCEWithLogitsLoss": "bce_with_logits",
    "MSELoss": "mse",
    "L1Loss": "l1",
    "SmoothL1Loss": "smooth_l1",
    "HuberLoss": "huber",
    "KLDivLoss": "kl_div",
}
# Layers whose behaviour differs between train() and eval(): what TG201/TG202 are about.
MODE_DEPENDENT_LAYERS = re.compile(
    r"^(Dropout\d?d?|AlphaDropout|FeatureAlphaDropout|BatchNorm\dd|LazyBatchNorm\dd|SyncBatchNorm|"
    r"Transformer|TransformerEncoderLayer|TransformerDecoderLayer)$"
)
# torchvision model builders whose architectures contain BatchNorm or Dropout.
TORCHVISION_MODE_DEPENDENT = re.compile(
    r"^(resnet|resnext|wide_resnet|vgg|alexnet|densenet|mobilenet|efficientnet|inception|googlenet|"
    r"squeezenet|shufflenet|mnasnet|regnet)"
)
PARAMETER_LAYERS = re.compile(
    r"^(Linear|LazyLinear|Bilinear|Conv\dd|ConvTranspose\dd|LazyConv\dd|Embedding|EmbeddingBag|RNN|LSTM|GRU|"
    r"Transformer\w*|MultiheadAttention|LayerNorm|GroupNorm|BatchNorm\dd|RMSNorm|Sequential|PReLU)$"
)
SHAPE_METHODS = frozenset(
    "view reshape flatten squeeze unsqueeze contiguous permute transpose t to float double half bfloat16 "
    "cuda cpu clone type view_as reshape_as narrow".split()
)
DETACHING_METHODS = frozenset("item detach detach_ tolist numpy data".split())
# Torch functions and tensor methods whose result carries no graph (constants shaped like their
# input, indices, comparisons, integer casts): what a label or mask is made with.
NO_GRAPH_RESULTS = frozenset(
    "ones_like zeros_like full_like empty_like rand_like randn_like randint_like new_ones new_zeros new_full "
    "new_empty new_tensor argmax argmin argsort eq ne gt ge lt le isnan isinf isfinite multinomial one_hot long "
    "int bool logical_not logical_and logical_or nonzero bucketize".split()
)
DETACHING_BUILTINS = frozenset("float int bool str repr len round format".split())
# Calls that never touch training state although they receive the objects (no invalidation).
HARMLESS_CALLS = frozenset(
    "print len range enumerate zip iter next isinstance issubclass hasattr getattr id type repr str int float "
    "bool list tuple dict set sum min max abs round sorted reversed format vars callable any all map filter "
    "tqdm trange".split()
)
HARMLESS_RECEIVERS = frozenset("logger logging log writer wandb mlflow tb_writer summary_writer pbar progress tqdm np math os sys time json random".split())
FILE_MODELS_BASES = frozenset({"Module", "LightningModule", "PreTrainedModel"})
MAP_STYLE_DATASETS = re.compile(
    r"^torch\.utils\.data\.(TensorDataset|Subset|ConcatDataset|StackDataset)$|"
    r"^torchvision\.datasets\.\w+$|^torch\.utils\.data\.random_split$"
)

_OPTIMIZER_NAME = re.compile(r"(^|_)(opt|optim|optimi[sz]er)(_|$|\d)|optimi[sz]er", re.I)
_SCHEDULER_NAME = re.compile(r"sched", re.I)
_SCALER_NAME = re.compile(r"(^|_)(grad_?)?scaler($|_)", re.I)
_MODEL_NAME = re.compile(
    r"^(model|net|network|module|encoder|decoder|generator|discriminator|net[GD]|G|D|backbone|classifier|"
    r"student|teacher|policy|critic|actor|vae|unet|transformer|raw_model|ddp_model)(_\w+)?$",
    re.I,
)
_LOADER_NAME = re.compile(r"loader", re.I)


@lru_cache(maxsize=4096)  # asked for every unknown name each time a trace reads it
def guess_kind(name: str) -> str | None:
    """The kind of an unseen value from its name alone (`scheduler`, `opt_g`, `netD`, ...)."""
    if _SCHEDULER_NAME.search(name):
        return "scheduler"
    if _SCALER_NAME.search(name):
        return "scaler"
    if _OPTIMIZER_NAME.search(name):
        return "optimizer"
    if _LOADER_NAME.search(name):
        return "loader"
    if _MODEL_NAME.match(name):
        return "model"
    return None


def kind_of_annotation(qualname: str | None) -> str | None:
    """The kind an annotation like `torch.optim.Optimizer` or `nn.Module` declares."""
    if not qualname:
        return None
    last = qualname.rsplit(".", 1)[-1]
    if last in ("Optimizer",):
        return "optimizer"
    if last in ("LRScheduler", "_LRScheduler", "ReduceLROnPlateau"):
        return "scheduler"
    if last == "GradScaler":
        return "scaler"
    if last == "DataLoader":
        return "loader"
    if last in ("Module", "DistributedDataParallel"):
        return "model"
    return None


def builds_pretrained_model(qualname: str) -> bool:
    """A model constructor of the ecosystem: torchvision's builders, `timm.create_model`, `from_pretrained`."""
    return qualname.startswith("torchvision.models.") or qualname == "timm.create_model" or qualname.endswith(".from_pretrained")


def is_scheduler(qualname: str) -> bool:
    """A learning-rate scheduler constructor (torch, transformers, diffusers, timm)."""
    factories = ("transformers.get_", "diffusers.optimization.get_", "timm.scheduler.")
    if qualname.endswith("swa_utils.SWALR"):
        return True
    return ".lr_scheduler." in qualname or (qualname.startswith(factories) and "schedule" in qualname)


def steps_relative_schedule(qualname: str) -> bool:
    """A scheduler whose `step()` moves the schedule on from its last step, so its order against the
    optimizer's step matters: torch's `lr_scheduler.*` (ReduceLROnPlateau included) and the factories
    returning one (transformers' `get_*_schedule*`, diffusers' `get_scheduler`). Not timm's
    schedulers: their `step(epoch)` / `step_update(n)` take the absolute count."""
    return is_scheduler(qualname) and not qualname.startswith("timm.")


def is_optimizer(qualname: str) -> bool:
    """An optimizer constructor (torch.optim and common third-party optimizers)."""
    if is_scheduler(qualname):
        return False
    module, _, last = qualname.rpartition(".")
    if not last[:1].isupper() or last == "Optimizer" or module.endswith("swa_utils"):  # AveragedModel is a model
        return False
    return module in ("torch.optim", "transformers", "bitsandbytes.optim", "timm.optim", "apex.optimizers") or module.startswith(
        "torch.optim."
    ) or module == "torch.distributed.optim"


def is_grad_scaler(qualname: str) -> bool:
    """A GradScaler constructor, old or new spelling."""
    return qualname in ("torch.cuda.amp.GradScaler", "torch.amp.GradScaler", "torch.GradScaler", "torch.cpu.amp.GradScaler", "torch.amp.grad_scaler.GradScaler")


def torch_nn_class(qualname: str) -> str | None:
    """`torch.nn.CrossEntropyLoss` / `torch.nn.modules.loss.CrossEntropyLoss` -> "CrossEntropyLoss"."""
    if qualname.startswith("torch.nn.") and not qualname.startswith("torch.nn.functional."):
        last = qualname.rsplit(".", 1)[-1]
        if last[:1].isupper():
            return last
    return None


def functional_name(qualname: str) -> str | None:
    """`torch.nn.functional.softmax` -> "softmax"; `torch.softmax` -> "softmax"."""
    if qualname.startswith("torch.nn.functional."):
        return qualname.rsplit(".", 1)[-1]
    if qualname.count(".") == 1 and qualname.startswith("torch."):
        return qualname.split(".", 1)[1]
    if qualname.startswith("torch.special."):
        return qualname.rsplit(".", 1)[-1]
    return None


def is_accumulation_name(text: str) -> bool:
    """A loop header or counter that names gradient accumulation / micro-batches."""
    return bool(re.search(r"accum|micro", text, re.I))
