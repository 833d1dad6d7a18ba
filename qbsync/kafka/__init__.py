"""Kafka access: the topic catalogue, a producer, and the dead-letter sink."""
