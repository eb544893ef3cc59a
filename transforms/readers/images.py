"""Image folders: DIR/<label>/*.png|jpg, one record per file, the label from the sub-folder's name."""
from __future__ import annotations

import posixpath
from typing import Any, Iterator, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from dpsynth.encoders.imaging import ImageDecodeError, decode_image
from dpsynth.errors import UserError
from transforms.readers.base import (COUNTER_NAMESPACE, REJECTED, STRING, BatchBuilder, Columns, InputInfo,
                                     Reader, register)
from transforms.readers.files import list_files

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _image_pattern(folder: str) -> str:
    return FileSystems.join(folder.rstrip("/"), "*", "*")


def _is_image_path(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _keep_image_file(meta: Any) -> bool:
    """Files without an image extension are not records: skipped, but counted."""
    if _is_image_path(meta.path):
        return True
    Metrics.counter(COUNTER_NAMESPACE, "skipped_non_image_files").inc()
    return False


class _ReadImageFilesFn(beam.DoFn):
    """[FileMetadata] (a batch of paths) -> RecordBatch of decoded images + rejections."""

    def __init__(self, folder: str):
        self.folder = folder.rstrip("/")

    def process(self, metas: Sequence[Any]) -> Iterator[Any]:
        builder = BatchBuilder(self.folder, max(1, len(metas)), with_ids=True, label_kind=STRING)
        for meta in metas:
            path = meta.path
            label = posixpath.basename(posixpath.dirname(path.replace("\\", "/")))
            record_id = f"{label}/{posixpath.basename(path)}"
            try:
                with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                    data = handle.read()
                image = decode_image(data)
            except ImageDecodeError as exc:
                yield builder.reject(record_id, str(exc), record_id, label)
                continue
            except OSError as exc:
                yield builder.reject(record_id, f"unreadable image: {type(exc).__name__}", record_id, label)
                continue
            yield from builder.add(image, label, record_id)
        yield from builder.finish()


@register
class ImageFolderReader(Reader):
    name = "images"
    modalities = ("image",)
    holds_directories = True

    def inspect(self, path: str, modality: str, columns: Columns, vector_dim: int | None,
                idx_labels: str | None) -> InputInfo:
        images = tuple(p for p in list_files(_image_pattern(path)) if _is_image_path(p))
        if not images:
            raise UserError(f"image folder {path!r} has no images "
                            f"(expected {path.rstrip('/')}/<label>/*.png|jpg)")
        return InputInfo(path, self.name, modality, columns, images, STRING, has_ids=True)

    def expand(self, pipeline: beam.Pipeline, info: InputInfo, batch_size: int) -> tuple[Any, Any]:
        tagged = (
            pipeline
            | "ImagePattern" >> beam.Create([_image_pattern(info.path)])
            # element: file pattern -> FileMetadata per matching file
            | "MatchFiles" >> fileio.MatchAll()
            | "KeepImages" >> beam.Filter(_keep_image_file)
            | "SpreadFiles" >> beam.Reshuffle()
            # element: [FileMetadata] of up to batch_size files
            | "BatchPaths" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size)
            | "DecodeImages" >> beam.ParDo(_ReadImageFilesFn(info.path)).with_outputs(REJECTED, main="records"))
        return tagged.records, tagged[REJECTED]
