"""rconv's data path (Keras 3's data adapters + EpochIterator): arrays and structures of arrays, PyDatasets,
re-iterable datasets and generators, all batched as `(x, y, sample_weight)` by one `EpochIterator`."""
from .adapters import (ArrayDataAdapter, DataAdapter, GeneratorDataAdapter, IterableDataAdapter, PyDatasetAdapter,
                       class_weight_to_sample_weights, get_data_adapter, is_stream, pack_x_y_sample_weight,
                       standardize_batch, stream_kind, train_validation_split, unpack_x_y_sample_weight)
from .epoch_iterator import EpochIterator

__all__ = ["EpochIterator", "DataAdapter", "ArrayDataAdapter", "PyDatasetAdapter", "IterableDataAdapter",
           "GeneratorDataAdapter", "get_data_adapter", "is_stream", "stream_kind", "train_validation_split",
           "unpack_x_y_sample_weight", "pack_x_y_sample_weight", "class_weight_to_sample_weights",
           "standardize_batch"]
