"""Sources: producer processes that turn social posts into SocialPost records on Kafka."""
