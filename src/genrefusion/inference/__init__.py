"""Using a trained model: predict on audio files (:mod:`.predictor`), tag a music library
(:mod:`.library`), serve predictions over HTTP (:mod:`.service`), export to ONNX (:mod:`.onnx`)."""
