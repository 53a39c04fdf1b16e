"""The storeedge simulator: an embedded broker, a cloud sink, simulated devices and scenario runs.

Everything here is a real backend built on the real codecs and libraries (paho, amqtt, SQLite), so a
simulator run exercises the same code paths as a store; it is not a mock.
"""
