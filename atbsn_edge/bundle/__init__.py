"""The deployment bundle and the artifact format: one owner for the manifest schema, the
metadata every artifact carries (per backend carrier), file names, content hashes and the
reference data. Imports neither PyTorch nor the exporters: a device with only a runtime
opens bundles through this package."""
from .files import FP32_ONNX, artifact_files, artifact_name, content_hashes, onnx_name
from .manifest import (MANIFEST_FILE, PENDING, READY, SCHEMA_VERSION, ArtifactEntry, Bundle,
                       is_bundle)
from .metadata import REQUIRED_KEYS, ArtifactMetadata
from .reference import REFERENCE_FILE, load_reference, save_reference

__all__ = ["FP32_ONNX", "MANIFEST_FILE", "PENDING", "READY", "REFERENCE_FILE", "REQUIRED_KEYS",
           "SCHEMA_VERSION", "ArtifactEntry", "ArtifactMetadata", "Bundle", "artifact_files",
           "artifact_name", "content_hashes", "is_bundle", "load_reference", "onnx_name",
           "save_reference"]
