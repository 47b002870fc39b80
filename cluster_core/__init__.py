"""What the coordinator and the agents share: settings, errors, specialties, task states, the
queue protocol and the GitHub client. It imports neither app; both apps import it."""
