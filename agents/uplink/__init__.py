"""The cloud link: durable outbox, MQTT session, uplink publisher and downlink command dispatcher."""
