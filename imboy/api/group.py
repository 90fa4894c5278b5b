"""(being written)"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("group", __name__)
