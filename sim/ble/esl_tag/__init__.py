"""The emulated Bluetooth ESL tag, in parts (the simulator's public names are re-exported by :mod:`sim.ble`).

- :mod:`sim.ble.esl_tag.tag`: :class:`~sim.ble.esl_tag.tag.EmulatedEslTag`, a bumble GATT server on the virtual
  radio serving the ESL and DIS services, its connection life cycle and ordered notifications.
- :mod:`sim.ble.esl_tag.state`: the ESL state machine and command execution (ECP writes and PAwR sync packets), no
  radio.
- :mod:`sim.ble.esl_tag.ots`: the Object Transfer Service: image slots as objects, OLCP/OACP, the object channel
  (L2CAP CoC) and mid-transfer faults.
- :mod:`sim.ble.esl_tag.advertising`: what the tag advertises in each state.
- :mod:`sim.ble.esl_tag.attributes`: ATT error codes and characteristics with the tag's permissions.
- :mod:`sim.ble.esl_tag.model`: profile, state, faults, image objects, e-paper and LEDs (plain data).
- :mod:`sim.ble.esl_tag.timing`: the timing model and the per-tag timeline of modelled seconds.

Each module imports only the ones listed below it and :mod:`sim.ble.radio`.
"""
