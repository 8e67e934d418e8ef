"""Pydantic models for ``fal-ai/wan-25-preview/image-to-image``, one set per profile.

Two profiles share field names, titles, descriptions and examples, and differ only in
constraints:

- ``documented``: what the docs *say* (prompt <= 2000, negative_prompt <= 500, at least
  one image URL, sizes 384..5000), enforced as schema errors.
- ``published``: what the published schema *contains* (WAN25.md §1.1 reconstructed
  component; ``ImageSize`` from the fal SDK, WAN25.md §2).  This is the one served as
  OpenAPI.

Union members are called ``ImageSize`` in both profiles on purpose: pydantic names a
union branch after the class, and that name appears in error ``loc``s
(``["body","image_size","ImageSize","width"]``, WAN25.md §3.1).
"""
from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from mock_server.endpoints.wan25._rules import IMAGE_SIZE_PRESETS, LIMITS as _LIMITS, Profile

ImageSizePreset = Literal["square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"]

_PROMPT_EXAMPLE = (
    "Reimagine the scene under a raging thunderstorm at night: lightning forks across the sky, "
    "illuminating the samurai in stark flashes of white light."
)


class ImageSizeBase(BaseModel):
    """Common base of the per-profile ``ImageSize`` models (for type checks only)."""

    width: int = 512
    height: int = 512


class Wan25Input(BaseModel):
    """Common base of the per-profile input models; ``parse()`` returns one of these."""

    prompt: str
    image_urls: list[str]
    negative_prompt: str | None = None
    image_size: Union[ImageSizeBase, ImageSizePreset] = "square"
    num_images: int = 1
    seed: int | None = None
    enable_safety_checker: bool = True

    def size(self) -> tuple[int, int]:
        """Output (width, height): the preset table, or the custom object as given."""
        if isinstance(self.image_size, str):
            return IMAGE_SIZE_PRESETS[self.image_size]
        return self.image_size.width, self.image_size.height


def build_models(profile: Profile) -> tuple[type[Wan25Input], type[ImageSizeBase]]:
    """The (input model, ImageSize model) pair for ``profile``.

    Field order is the ``x-fal-order-properties`` order (WAN25.md §1.1); it also fixes
    the order of errors in a 422 (``prompt`` before ``image_urls``).
    """
    limits = _LIMITS[profile]

    class ImageSize(ImageSizeBase):
        model_config = ConfigDict(title="ImageSize")

        width: int = Field(default=512, title="Width", description="The width of the generated image.", **limits.size_bounds)
        height: int = Field(default=512, title="Height", description="The height of the generated image.", **limits.size_bounds)

    class Wan25PreviewImageToImageInput(Wan25Input):
        # WAN25.md §1.1: title/description from fal-js zod doc comments.
        model_config = ConfigDict(title="ImageToImageInput", json_schema_extra={"description": "Input for image editing"})

        prompt: str = Field(
            title="Prompt",
            min_length=1,
            max_length=limits.prompt_max,
            description="The text prompt describing how to edit the image. Max 2000 characters.",
            examples=[_PROMPT_EXAMPLE],
        )
        image_urls: list[str] = Field(
            title="Image Urls",
            min_length=limits.image_urls_min,
            description=(
                "URLs of images to edit. For single-image editing, provide 1 URL. For multi-reference "
                "generation, provide up to 2 URLs. If more than 2 URLs are provided, only the first 2 will be used."
            ),
            examples=[["https://v3.fal.media/files/penguin/4VZ7I1ZK5XNv33LV2JBxg.png"]],
        )
        negative_prompt: str | None = Field(
            default=None,
            title="Negative Prompt",
            max_length=limits.negative_prompt_max,
            description="Negative prompt to describe content to avoid. Max 500 characters.",
            examples=["low resolution, error, worst quality, low quality, defects"],
        )
        image_size: Union[ImageSize, ImageSizePreset] = Field(  # type: ignore[assignment]
            default="square",
            title="Image Size",
            description="The size of the generated image. Width and height must be between 384 and 1440 pixels.",
            examples=["square", "landscape_16_9", "portrait_16_9", {"height": 1280, "width": 1280}],
        )
        num_images: int = Field(
            default=1, title="Num Images", ge=1, le=4,
            description="Number of images to generate. Values from 1 to 4.", examples=[1],
        )
        seed: int | None = Field(
            default=None, title="Seed",
            description="Random seed for reproducibility. If None, a random seed is chosen.",
        )
        enable_safety_checker: bool = Field(
            default=True, title="Enable Safety Checker",
            description="If set to true, the safety checker will be enabled.", examples=[True],
        )

    return Wan25PreviewImageToImageInput, ImageSize


# -- output --------------------------------------------------------------------------


class ImageFile(BaseModel):
    """One output image (fal-js ``ImageFile``; WAN25.md §1.2). Schema only: the body is built by hand."""

    model_config = ConfigDict(title="ImageFile", defer_build=True)  # built when the OpenAPI is first served

    url: str = Field(title="Url", description="The URL where the file can be downloaded from.")
    content_type: str | None = Field(default=None, title="Content Type", description="The mime type of the file.", examples=["image/png"])
    file_name: str | None = Field(
        default=None, title="File Name",
        description="The name of the file. It will be auto-generated if not provided.", examples=["z9RV14K95DvU.png"],
    )
    file_size: int | None = Field(default=None, title="File Size", description="The size of the file in bytes.", examples=[4404019])
    width: int | None = Field(default=None, title="Width", description="The width of the image", examples=[1024])
    height: int | None = Field(default=None, title="Height", description="The height of the image", examples=[1024])


class Wan25PreviewImageToImageOutput(BaseModel):
    """The 200 body (WAN25.md §1.2)."""

    model_config = ConfigDict(title="ImageToImageOutput", json_schema_extra={"description": "Output for image editing"},
                              defer_build=True)

    images: list[ImageFile] = Field(
        title="Images", description="The edited images",
        examples=[[{"content_type": "image/png", "url": "https://v3.fal.media/files/rabbit/BM4J8xpV5ogtOQE9xGtft.png"}]],
    )
    seeds: list[int] = Field(title="Seeds", description="The seeds used for each generated image", examples=[[175932751]])
    actual_prompt: str | None = Field(
        default=None, title="Actual Prompt",
        description="The original prompt (prompt expansion is not available for image editing)",
        examples=[_PROMPT_EXAMPLE],
    )


class QueueStatus(BaseModel):
    """fal's queue status object as served in every queue OpenAPI (PROTOCOL.md §3.4)."""

    model_config = ConfigDict(title="QueueStatus", defer_build=True)

    status: Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"] = Field(title="Status")
    request_id: str = Field(title="Request Id", description="The request id.")
    response_url: str | None = Field(default=None, title="Response Url", description="The response url.")
    status_url: str | None = Field(default=None, title="Status Url", description="The status url.")
    cancel_url: str | None = Field(default=None, title="Cancel Url", description="The cancel url.")
    # an array of {timestamp, message, level, source, labels} on the wire (PROTOCOL.md §3.4)
    logs: list[dict[str, Any]] | None = Field(default=None, title="Logs", description="The logs.")
    metrics: dict[str, Any] | None = Field(default=None, title="Metrics", description="The metrics.")
    queue_position: int | None = Field(default=None, title="Queue Position", description="The queue position.")
