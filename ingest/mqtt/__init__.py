"""The only package that imports the MQTT client library (paho-mqtt 2.x).

`subscriber`: the ingest side, QoS 1, persistent session, acknowledgement only once a fix is durable.
`publisher`: the device side (simulator, load test) and notifications to devices (offers).
`client`: what both share (the broker URL, the paho client's set-up, socket callbacks on the loop);
`fast_client`: the subscriber's paho client with buffered reads, a lean PUBLISH path and batched acks.
"""
