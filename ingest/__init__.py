"""The device side: MQTT and HTTP input, decoding, validation, batching and durable storage of fixes."""
