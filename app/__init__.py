"""PIM Rollout: phased rollout of Entra ID Privileged Identity Management."""
