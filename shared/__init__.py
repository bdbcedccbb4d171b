"""Layer 1, contracts and maths: settings, shared names, the SocialPost schema and rules, keyword rules, trend and
volume maths, the jar manifest. Nothing here needs Flink or a running service (ARCHITECTURE.md)."""
