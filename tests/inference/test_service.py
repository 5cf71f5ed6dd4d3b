"""The HTTP service over real HTTP on 127.0.0.1, and its web page in headless Chromium with a real upload."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from genrefusion.inference.predictor import Predictor
from genrefusion.inference.service import ServiceConfig, create_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(frozen_bundle):
    """uvicorn serving the synthetic bundle in a thread; stopped after the module's tests."""
    import uvicorn

    app = create_app(Predictor(frozen_bundle), ServiceConfig(max_upload_mb=1.0, timeout_s=30, concurrency=1))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the service did not start in 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def _call(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict | str]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body, status, ctype = r.read(), r.status, r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        body, status, ctype = e.read(), e.code, e.headers.get("content-type", "")
    return status, json.loads(body) if "json" in ctype else body.decode()


def _post_refused_early(url: str, data: bytes, headers: dict) -> tuple[int, dict]:
    """POST a body the server may refuse (and close on) before reading it all: a write that fails
    then is expected, and the answer is read all the same."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        try:
            conn.request("POST", u.path, body=data, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def _multipart(path: Path, field: str = "file") -> tuple[bytes, dict]:
    boundary = "genrefusion-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_health_and_model_card(server, frozen_bundle):
    status, health = _call(server + "/health")
    assert status == 200 and health["status"] == "ok" and health["labels"] == ["blues", "classical", "metal"]
    status, card = _call(server + "/model")
    assert status == 200 and card["labels"] == health["labels"] and "test_accuracy" in card
    for answer in (card, health):  # no client learns where the server keeps its model or its files
        assert str(frozen_bundle.parent) not in json.dumps(answer) and "/tmp" not in json.dumps(answer)


def test_predict_a_multipart_upload_and_a_raw_body(server, songs):
    status, result = _call(server + "/predict?top_k=2&timeline=true&spectrogram=true", *_multipart(songs["metal"]))
    assert status == 200, result
    assert result["genre"] == "metal" and len(result["top"]) == 2 and result["path"] == "new_metal.wav"
    assert result["timeline"] and result["status"] in ("ok", "not_sure")
    spec = result["spectrogram"]
    assert spec["png"] and spec["seconds"] == pytest.approx(result["duration_s"], abs=0.2) and spec["max_hz"] == 8000
    assert [hz for hz, _ in spec["ticks_hz"]] == [0, 250, 500, 1000, 2000, 4000, 8000]
    assert spec["ticks_hz"][0][1] == 1.0 and spec["ticks_hz"][-1][1] == 0.0  # 0 Hz at the bottom, sr/2 on top
    status, raw = _call(server + "/predict", songs["blues"].read_bytes(), {"X-Filename": "song.wav"})
    assert status == 200 and raw["genre"] == "blues" and "spectrogram" not in raw, raw


def test_bad_requests_get_clear_4xx_errors(server, songs, tmp_path):
    status, body = _call(server + "/predict", *_multipart(songs["corrupt"]))
    assert status == 415 and "corrupt.mp3" in body["detail"] and "/tmp" not in body["detail"]
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (2 * 1024 * 1024))
    status, body = _post_refused_early(server + "/predict", *_multipart(big))
    assert status == 413 and "1 MB" in body["detail"]
    status, body = _call(server + "/predict", *_multipart(songs["blues"], field="other"))
    assert status == 400 and "'file'" in body["detail"]
    status, body = _call(server + "/predict?top_k=9", songs["blues"].read_bytes())
    assert status == 422


def test_uploads_leave_nothing_behind(server, songs, tmp_path, monkeypatch):
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("genrefusion-*"))
    _call(server + "/predict", *_multipart(songs["blues"]))
    _call(server + "/predict", *_multipart(songs["corrupt"]))
    assert set(Path(tempfile.gettempdir()).glob("genrefusion-*")) == before


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium test needs Debian's chromium and chromium-driver")
def test_web_page_upload_in_headless_chromium(server, songs, tmp_path):
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = _chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get(server + "/")
        WebDriverWait(driver, 30).until(lambda d: "3 genres" in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "file").send_keys(str(songs["classical"]))  # a real file upload
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#bars .bar"))
        labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#bars .bar .label")]
        assert labels[0] == "classical" and len(labels) == 3
        assert driver.find_element(By.ID, "status").text.startswith("new_classical.wav: classical")
        img = driver.find_element(By.ID, "spectrogram")
        assert img.is_displayed() and driver.execute_script("return arguments[0].naturalWidth", img) > 100
        freq = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#freq-axis span")]
        assert freq[0] == "0" and freq[-1] == "8k"  # a frequency axis, and a time axis below
        assert [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#time-axis span")][0] == "0"
        driver.save_screenshot(str(tmp_path / "page.png"))
        driver.find_element(By.ID, "file").send_keys(str(songs["long"]))  # 10 s in 3 s segments: a timeline
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text.startswith("blues_then_metal"))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline .piece")) >= 3
        assert driver.find_element(By.ID, "timeline-box").is_displayed()
        silence = tmp_path / "silence.wav"
        import numpy as np
        import soundfile as sf

        sf.write(silence, np.zeros(22050 * 5, np.float32), 22050)
        driver.find_element(By.ID, "file").send_keys(str(silence))
        WebDriverWait(driver, 30).until(lambda d: "no music" in d.find_element(By.ID, "status").text)
        assert "silence" in driver.find_element(By.ID, "verdict").text and not driver.find_elements(By.CSS_SELECTOR, "#bars .bar")
        driver.find_element(By.ID, "file").send_keys(str(songs["corrupt"]))
        WebDriverWait(driver, 30).until(lambda d: "error" in d.find_element(By.ID, "status").get_attribute("class"))
        assert "corrupt.mp3" in driver.find_element(By.ID, "status").text
    finally:
        driver.quit()


def test_silence_is_answered_as_no_music(server, tmp_path):
    import numpy as np
    import soundfile as sf

    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(22050 * 5, np.float32), 22050)
    status, result = _call(server + "/predict", silence.read_bytes(), {"X-Filename": "silence.wav"})
    assert status == 200 and result["status"] == "no_music" and result["genre"] is None and result["top"] == []
    status, card = _call(server + "/model")
    assert "bundle" not in card and "/" not in json.dumps(card.get("inputs"))  # no server paths
