"""Process-wide test settings; must run before TensorFlow is imported."""

import os

# Building many small models under tf.GradientTape in one process has crashed TensorFlow's oneDNN
# kernels on this machine (heap corruption); the reference kernels are exact and fast enough.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
