"""Keras callbacks, one module per callback like Keras 3's `keras/src/callbacks/`: the `Callback` hooks,
`CallbackList` (what fit/evaluate/predict drive), `History`, `ProgbarLogger`, the `MonitorCallback` base
and Keras 3's training callbacks: `EarlyStopping`, `ModelCheckpoint`, `TensorBoard`, `CSVLogger`,
`ReduceLROnPlateau`, `TerminateOnNaN`, `LearningRateScheduler`, `LambdaCallback`.

Semantics and messages follow Keras 3: epochs are 0-based in the hooks and 1-based in messages and in
ModelCheckpoint file names. EarlyStopping, ModelCheckpoint and ReduceLROnPlateau share one rule for the
direction of a monitored quantity (`monitor_callback.monitor_mode`).
"""
from .callback import Callback
from .callback_list import CallbackList
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .history import History
from .lambda_callback import LambdaCallback
from .learning_rate_scheduler import LearningRateScheduler
from .model_checkpoint import ModelCheckpoint
from .monitor_callback import MonitorCallback
from .progbar_logger import ProgbarLogger
from .reduce_lr_on_plateau import ReduceLROnPlateau
from .tensorboard import TensorBoard
from .terminate_on_nan import TerminateOnNaN

__all__ = ["Callback", "CallbackList", "CSVLogger", "EarlyStopping", "History", "LambdaCallback",
           "LearningRateScheduler", "ModelCheckpoint", "MonitorCallback", "ProgbarLogger", "ReduceLROnPlateau",
           "TensorBoard", "TerminateOnNaN"]
