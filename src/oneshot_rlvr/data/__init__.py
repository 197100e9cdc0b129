"""Problems, prompt templates and 1-shot training sets."""

from oneshot_rlvr.data.oneshot import expand_to_batch
from oneshot_rlvr.data.problems import Problem, load_problems, problems_from_rows
from oneshot_rlvr.data.templates import TEMPLATES, render_prompt

__all__ = ["TEMPLATES", "Problem", "expand_to_batch", "load_problems", "problems_from_rows", "render_prompt"]
