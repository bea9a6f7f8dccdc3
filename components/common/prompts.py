"""How an instruction and an input become the prompt text every stage sees."""

INSTRUCTION_SEPARATOR = "\n\n"


def apply_instruction(input_text: str, instruction: str | None) -> str:
    """Prepend `instruction` (Vertex's `instruction` parameter) to an input, when one is given."""
    if not instruction:
        return input_text
    return f"{instruction.strip()}{INSTRUCTION_SEPARATOR}{input_text}"
