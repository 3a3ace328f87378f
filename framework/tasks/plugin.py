"""Entry point of the built-in tasks: registered exactly like a third-party task."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_tasks(registry):
    registry.register("text_generation", "zooinfer.tasks.generation:TextGenerationTask")
    registry.register("chat", "zooinfer.tasks.generation:ChatTask")
    registry.register("score", "zooinfer.tasks.score:ScoreTask")
