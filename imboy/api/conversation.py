"""(being written)"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("conversation", __name__)
