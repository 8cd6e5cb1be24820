"""Where every pretrained component of VSSFlow comes from.

One frozen :class:`ComponentSource` per component says which public repository holds its weights, which files to
take, in what serialisation format, under which licence, roughly how big they are, and a handful of tensor names and
shapes that identify the right model.  :mod:`vssflow_core.weights.hub` uses this to find, fetch and check files;
nothing here touches the disk or the network.

Sources were checked against the public hub listings (spec section 12):

* CLIP ViT-B/16 (10 fps frame features): ``openai/clip-vit-base-patch16`` ``model.safetensors`` (Hugging Face layout,
  full CLIP, about 599 MB), or OpenAI's original TorchScript ``ViT-B-16.pt``, which the official code loads.
* AudioLDM2 VAE and HiFi-GAN vocoder: ``cvssp/audioldm2`` subfolders ``vae/`` and ``vocoder/``.
* Synchformer visual branch: ``synchformer_state_dict.pth`` as MMAudio ships it (``hkchengrex/MMAudio``,
  ``ext_weights/``; also a GitHub release asset of that repository).
* RawNet3 speaker encoder: ``jungjee/RawNet3`` ``model.pt`` (the GitHub repo Jungjee/RawNet pulls this hub repo in as
  its ``python/RawNet3/models/weights`` submodule).
* Stable Audio Open 1.0 transformer: gated, only used to initialise training.
* AV-HuBERT: listed so users learn why it is absent; this package does not run it.
* VSSFlow itself: the authors have published no checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping

Shape = tuple[int, ...]


class WeightFormat(str, Enum):
    """How a file is serialised; decides how it can be checked without loading it."""

    SAFETENSORS = "safetensors"
    PICKLE = "pickled-weights-only"  # torch.save of tensors only; load with weights_only=True
    TORCHSCRIPT = "torchscript"  # torch.jit archive (OpenAI CLIP .pt); never unpickle it as a state dict
    JSON = "json"


@dataclass(frozen=True)
class KeyLayout:
    """A few tensors that identify a model in one key-naming convention.

    ``shapes`` maps a tensor name to its expected shape, or to ``None`` when only its presence matters (models
    whose width may vary, e.g. a VSSFlow trained at another size).  Names match exactly or as a dotted suffix, so
    the same layout recognises ``fc6.weight`` inside ``{"model": ...}`` or ``state_dict.`` wrappers.
    """

    name: str
    shapes: Mapping[str, Shape | None]


@dataclass(frozen=True)
class WeightFile:
    """One file of a component, as it sits in its source repository."""

    filename: str
    format: WeightFormat
    subfolder: str = ""
    role: str = "weights"  # "weights" (the file to load) or "config" (optional, the library knows the architecture)
    approx_size: str = ""
    size_bytes: int | None = None  # exact size of the published file, where known
    sha256: str | None = None  # of the published file, where known (the hub's LFS pointer)
    layouts: tuple[KeyLayout, ...] = ()  # any one must match (different key conventions of the same model)
    expected_config: Mapping[str, Any] = field(default_factory=dict)  # for JSON files: values that must match
    aliases: tuple[str, ...] = ()  # other names accepted in the models folder (e.g. the OpenAI ``ViT-B-16.pt``)

    @property
    def repo_path(self) -> str:
        """Path inside the repository, as ``hf download`` and the hub cache spell it."""
        return f"{self.subfolder}/{self.filename}" if self.subfolder else self.filename

    @property
    def required(self) -> bool:
        return self.role == "weights"


@dataclass(frozen=True)
class ComponentSource:
    """The public source of one pretrained component."""

    name: str
    description: str
    repo_id: str | None  # Hugging Face model repository; None when there is no hub source
    files: tuple[WeightFile, ...]
    license: str
    approx_size: str
    revision: str = "main"
    used_for: str = "inference"  # "inference" or "training" (initialisation only)
    gated: bool = False  # the hub asks users to accept terms and log in first
    supported: bool = True  # False: documented but not run by this package
    other_sources: tuple[str, ...] = ()  # public URLs outside the hub, for manual download
    how_to_get: str = ""  # instructions when there is no downloadable source

    @property
    def weights_file(self) -> WeightFile:
        return next(f for f in self.files if f.role == "weights")

    @property
    def downloadable(self) -> bool:
        return self.supported and self.repo_id is not None

    def hub_url(self, file: WeightFile) -> str | None:
        if self.repo_id is None:
            return None
        return f"https://huggingface.co/{self.repo_id}/resolve/{self.revision}/{file.repo_path}"


# --- identifying tensors ------------------------------------------------------------------------------------------
# Shapes are those of the full-size models (the golden tests use small random ones with the same key layout).

_CLIP_OPENAI = KeyLayout(
    "openai",
    {
        "visual.conv1.weight": (768, 3, 16, 16),  # 16x16 patches, width 768: ViT-B/16 and not B/32 or L/14
        "visual.positional_embedding": (197, 768),  # 14x14 patches + CLS at 224 px
        "visual.proj": (768, 512),
        "visual.transformer.resblocks.11.mlp.c_fc.weight": (3072, 768),  # 12 layers
    },
)
_CLIP_HF = KeyLayout(
    "huggingface",
    {
        "vision_model.embeddings.patch_embedding.weight": (768, 3, 16, 16),
        "vision_model.embeddings.position_embedding.weight": (197, 768),
        "visual_projection.weight": (512, 768),
        "vision_model.encoder.layers.11.mlp.fc1.weight": (3072, 768),
    },
)
_VAE = KeyLayout(
    "diffusers",
    {
        "encoder.conv_in.weight": (128, 1, 3, 3),  # one-channel mel input, not an image VAE
        "encoder.conv_out.weight": (16, 512, 3, 3),  # mean and log-variance of 8 latent channels
        "quant_conv.weight": (16, 16, 1, 1),
        "decoder.conv_in.weight": (512, 8, 3, 3),
        "decoder.conv_out.weight": (1, 128, 3, 3),
    },
)
_VOCODER = KeyLayout(
    "transformers",
    {
        "conv_pre.weight": (1024, 64, 7),  # 64 mel bins in, upsample_initial_channel 1024
        "upsampler.0.weight": (1024, 512, 16),
        "upsampler.4.weight": (64, 32, 4),  # five upsamplers: 5*4*2*2*2 = 160 samples per mel frame
        "conv_post.weight": (1, 32, 7),
    },
)
_SYNCHFORMER = KeyLayout(
    "synchformer",
    {
        "vfeat_extractor.patch_embed.proj.weight": (768, 3, 16, 16),
        "vfeat_extractor.patch_embed_3d.proj.weight": (768, 3, 2, 16, 16),  # tubelets of 2 frames
        "vfeat_extractor.pos_embed": (1, 197, 768),
        "vfeat_extractor.temp_embed": (1, 8, 768),  # 8 temporal tokens per 16-frame segment
        "vfeat_extractor.blocks.11.mlp.fc1.weight": (3072, 768),
    },
)
_RAWNET3 = KeyLayout(
    "rawnet3",
    {
        "conv1.filterbank.low_hz_": (128, 1),  # sinc filterbank of C//4 = 256 filters, stored as half
        "layer1.conv1.weight": (1024, 256, 1),  # C = 1024
        "layer4.weight": (1536, 3072, 1),
        "fc6.weight": (256, 3072),  # 256-d speaker embedding
    },
)
_STABLE_AUDIO = KeyLayout(
    "diffusers",
    {
        "proj_in.weight": (1536, 64),  # 64 latent channels of the Oobleck VAE, width 24 x 64
        "timestep_proj.0.weight": (1536, 256),
        "transformer_blocks.0.attn1.to_q.weight": (1536, 1536),
        "transformer_blocks.0.attn2.to_k.weight": (768, 768),  # 12 key/value heads over 768-d text context
        "transformer_blocks.23.ff.net.2.weight": (1536, 6144),  # 24 layers
    },
)
# Presence only: a VSSFlow trained here may have another depth or width, which the loader reads off the shapes.
# Names are suffixes, so they match the Lightning layout (``state_dict.vaflow.proj_in.weight``) and converted files.
_VSSFLOW = KeyLayout(
    "vssflow",
    {
        "proj_in.weight": None,
        "timestep_proj.0.weight": None,
        "transformer_blocks.0.attn1.to_q.weight": None,
        "phone_embedding.weight": None,  # what a bare Stable Audio transformer lacks
    },
)


# --- the registry -------------------------------------------------------------------------------------------------

_COMPONENTS: tuple[ComponentSource, ...] = (
    ComponentSource(
        name="clip",
        description="OpenAI CLIP ViT-B/16 image tower (frame features at 10 fps, cross-attention context)",
        repo_id="openai/clip-vit-base-patch16",
        files=(
            WeightFile(
                "model.safetensors",
                WeightFormat.SAFETENSORS,
                approx_size="599 MB",
                layouts=(_CLIP_HF, _CLIP_OPENAI),
                aliases=("ViT-B-16.pt", "clip_vit_b16.safetensors"),
            ),
        ),
        license="MIT (OpenAI CLIP)",
        approx_size="599 MB (the hub file holds the text tower too; the OpenAI ViT-B-16.pt is about 350 MB)",
        other_sources=(
            "https://openaipublic.azureedge.net/clip/models/"
            "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt"
            " (OpenAI's original TorchScript file, the one the official code loads; the path segment is its SHA-256;"
            " save it as <models_dir>/clip/ViT-B-16.pt)",
        ),
    ),
    ComponentSource(
        name="vae",
        description="AudioLDM2 mel VAE (AutoencoderKL, 8 latent channels, 4x down in time and frequency)",
        repo_id="cvssp/audioldm2",
        files=(
            WeightFile(
                "diffusion_pytorch_model.safetensors",
                WeightFormat.SAFETENSORS,
                subfolder="vae",
                approx_size="222 MB",
                layouts=(_VAE,),
                aliases=("vae.safetensors",),
            ),
            WeightFile(
                "config.json",
                WeightFormat.JSON,
                subfolder="vae",
                role="config",
                approx_size="1 kB",
                expected_config={"in_channels": 1, "latent_channels": 8, "block_out_channels": [128, 256, 512]},
            ),
        ),
        license="CC-BY-NC-SA-4.0 (AudioLDM2 model card): non-commercial, share-alike",
        approx_size="222 MB",
    ),
    ComponentSource(
        name="vocoder",
        description="AudioLDM2 HiFi-GAN vocoder (SpeechT5HifiGan, 64-bin log-mel to 16 kHz)",
        repo_id="cvssp/audioldm2",
        files=(
            WeightFile(
                "model.safetensors",
                WeightFormat.SAFETENSORS,
                subfolder="vocoder",
                approx_size="221 MB",
                layouts=(_VOCODER,),
                aliases=("vocoder.safetensors",),
            ),
            WeightFile(
                "config.json",
                WeightFormat.JSON,
                subfolder="vocoder",
                role="config",
                approx_size="1 kB",
                expected_config={
                    "model_in_dim": 64,
                    "sampling_rate": 16000,
                    "upsample_initial_channel": 1024,
                    "upsample_rates": [5, 4, 2, 2, 2],
                },
            ),
        ),
        license="CC-BY-NC-SA-4.0 (AudioLDM2 model card): non-commercial, share-alike",
        approx_size="221 MB",
    ),
    ComponentSource(
        name="synchformer",
        description="Synchformer visual branch (MotionFormer, 25 fps, 16-frame segments, 8 tokens each)",
        repo_id="hkchengrex/MMAudio",
        files=(
            WeightFile(
                "synchformer_state_dict.pth",
                WeightFormat.PICKLE,
                subfolder="ext_weights",
                approx_size="950 MB",
                size_bytes=950_058_171,
                sha256="8aff082f2df5c3bc52759db0c865c7ee772ae6400b860d1b7e90413f2defb67c",
                layouts=(_SYNCHFORMER,),
            ),
        ),
        license=(
            "trained by the Synchformer authors (v-iashin/Synchformer, MIT code); this file is redistributed with"
            " MMAudio, whose weights are CC-BY-NC-4.0: treat it as non-commercial"
        ),
        approx_size="950 MB (the file also holds the audio branch, which is not used)",
        other_sources=(
            "https://github.com/hkchengrex/MMAudio/releases/download/v0.1/synchformer_state_dict.pth"
            " (the same file as a GitHub release asset; MMAudio's own downloader uses it)",
        ),
    ),
    ComponentSource(
        name="rawnet3",
        description="RawNet3 speaker encoder (16 kHz waveform to a 256-d speaker embedding)",
        repo_id="jungjee/RawNet3",
        files=(
            WeightFile(
                "model.pt",
                WeightFormat.PICKLE,  # {"model": state_dict}
                approx_size="65 MB",
                size_bytes=65_297_133,
                sha256="1ab283bcdf776bfceceea18240e56a8756835b1911b04f9c44f347d47c09f90c",
                layouts=(_RAWNET3,),
                aliases=("rawnet3.safetensors",),
            ),
        ),
        license="MIT (jungjee/RawNet3 model card)",
        approx_size="65 MB",
        other_sources=(
            "https://github.com/Jungjee/RawNet (python/RawNet3/models/weights is a git submodule of the hub repo;"
            " the file is the same model.pt)",
        ),
    ),
    ComponentSource(
        name="stable_audio",
        description="Stable Audio Open 1.0 DiT (initialises DiT blocks 0-9 and the time MLP before training)",
        repo_id="stabilityai/stable-audio-open-1.0",
        files=(
            WeightFile(
                "diffusion_pytorch_model.safetensors",
                WeightFormat.SAFETENSORS,
                subfolder="transformer",
                approx_size="4.2 GB",
                layouts=(_STABLE_AUDIO,),
            ),
            WeightFile(
                "config.json",
                WeightFormat.JSON,
                subfolder="transformer",
                role="config",
                approx_size="1 kB",
                expected_config={"_class_name": "StableAudioDiTModel"},
            ),
        ),
        license="Stability AI Community License (gated repository: accept the terms on its page, then log in)",
        approx_size="4.2 GB",
        used_for="training",
        gated=True,
    ),
    ComponentSource(
        name="avhubert",
        description="AV-HuBERT Large lip encoder (1024-d lip features at 25 fps)",
        repo_id=None,
        files=(WeightFile("self_large_vox_433h.pt", WeightFormat.PICKLE),),
        license="AV-HuBERT license (facebookresearch/av_hubert; see its LICENSE, non-commercial terms)",
        approx_size="not checked",
        supported=False,
        other_sources=("https://dl.fbaipublicfiles.com/avhubert/model/lrs3_vox/vsr/self_large_vox_433h.pt",),
        how_to_get=(
            "This package does not run AV-HuBERT (it needs fairseq and a face-landmark pipeline). Compute lip"
            " features elsewhere and pass them in, or leave them out: the lip condition is then all zeros, as in"
            " the official data for clips without a visible speaker."
        ),
    ),
    ComponentSource(
        name="vssflow",
        description="VSSFlow DiT and condition projections (the network itself)",
        repo_id=None,
        files=(
            WeightFile(
                "vssflow.safetensors",
                WeightFormat.SAFETENSORS,
                layouts=(_VSSFLOW,),
                aliases=("vssflow.ckpt", "vssflow.pt"),
            ),
        ),
        license="none published",
        approx_size=(
            "about 1.9 GB in float32 for the official network (464 M parameters); the official Lightning checkpoint"
            " would also carry the frozen CLIP tower, VAE and vocoder (660 M parameters, about 2.6 GB)"
        ),
        other_sources=("https://github.com/vasflow1/vssflow (code only; the authors have published no weights)",),
        how_to_get=(
            "The VSSFlow authors have not published a checkpoint. Train one with this package's trainer"
            " (python -m vssflow_core train ...), or, once the official checkpoint is released, save it as"
            " <models_dir>/vssflow/vssflow.ckpt (or convert it to vssflow.safetensors with"
            " python -m vssflow_core convert), or pass its path directly."
        ),
    ),
)

REGISTRY: Mapping[str, ComponentSource] = MappingProxyType({c.name: c for c in _COMPONENTS})

# What ``generate`` needs, in pipeline order.  AV-HuBERT is optional (unsupported) and Stable Audio is training-only.
INFERENCE_COMPONENTS: tuple[str, ...] = ("clip", "synchformer", "rawnet3", "vae", "vocoder", "vssflow")
# What ``download all`` fetches: every inference component that has a public source.
DOWNLOADABLE_INFERENCE_COMPONENTS: tuple[str, ...] = tuple(
    n for n in INFERENCE_COMPONENTS if REGISTRY[n].downloadable
)


def get_component(name: str) -> ComponentSource:
    """The registry entry for ``name`` (case-insensitive, ``-`` accepted for ``_``)."""
    key = name.strip().lower().replace("-", "_")
    try:
        return REGISTRY[key]
    except KeyError:
        raise ValueError(f"unknown component {name!r}; known components: {', '.join(REGISTRY)}") from None
