"""Flags many commands share, declared once so they read and behave the same everywhere."""

import typer

PROJECT = typer.Option("runs", help="Results go to PROJECT/<task>/NAME.")
NAME = typer.Option("exp", help="Run name (exp2, exp3... when taken).")
QUIET = typer.Option(False, help="No progress bars.")
DEVICE = typer.Option("auto", help="auto, cpu, cuda, cuda:1, mps.")
BATCH_SIZE = typer.Option(64, min=1)
