"""Quantization-aware training: fake int8 quantization at exactly the points the exported
Q/DQ graph quantizes (``fake_quant``, ``qat_network``), and the fine-tuning that learns the
ranges by distillation from the float network (``qat_training``)."""
