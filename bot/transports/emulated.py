"""A python-telegram-bot request that answers from the in-process emulator (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, RequestData

from bot.transports.emulator import (
    ApiError,
    BotApiEmulator,
    UploadedFile,
    decode_parameters,
    resolve_files,
)

CallObserver = Callable[[str, dict[str, Any], Any], None]


class EmulatedRequest(BaseRequest):
    """Sends every Bot API call to a :class:`BotApiEmulator`; ``observer`` sees each success."""

    def __init__(self, emulator: BotApiEmulator, observer: CallObserver | None = None) -> None:
        self.emulator = emulator
        self.observer = observer

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float | None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        raw = request_data.json_parameters if request_data else {}
        files = {}
        if request_data is not None and request_data.contains_files:
            for name, part in request_data.multipart_data.items():
                filename, content = part[0], part[1]
                data = content if isinstance(content, bytes) else content.read()
                files[name] = UploadedFile(str(filename), data)
        try:
            result = self.emulator.call(api_method, raw, files)
        except ApiError as exc:
            return exc.error_code, json.dumps(exc.payload()).encode()
        if self.observer is not None:
            self.observer(api_method, resolve_files(decode_parameters(raw), files), result)
        return 200, json.dumps({"ok": True, "result": result}).encode()
