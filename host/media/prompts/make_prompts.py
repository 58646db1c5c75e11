#!/usr/bin/env python3
"""Regenerate the default prompt set embedded in ctihost.

Speech comes from espeak-ng (Debian package `espeak-ng`); the music on hold is
synthesised here. Every file is 8 kHz, mono, 16-bit PCM, the format the host
plays (a bank records its own prompts and points `[media] prompts` at them).

    python3 host/media/prompts/make_prompts.py
"""

import audioop
import io
import math
import os
import subprocess
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 8000

SPEECH = {
    "welcome": "Welcome to the bank.",
    "main-menu": "For cards, press 1. For loans, press 2. For wealth management, press 3. To speak to an agent, press 0.",
    "main-menu-invalid": "Sorry, that is not a valid choice. For cards, press 1. For loans, press 2. For wealth management, press 3. To speak to an agent, press 0.",
    "enter-card": "Please enter your card number, then press the hash key.",
    "enter-pin": "Please enter your PIN, then press the hash key.",
    "thank-you": "Thank you.",
    "please-hold": "All our agents are busy. Please hold, your call is important to us.",
    "you-are-number": "You are number",
    "in-the-queue": "in the queue.",
    "estimated-wait": "Your estimated waiting time is",
    "minutes": "minutes.",
    "less-than-a-minute": "less than one minute.",
    "goodbye": "Thank you for calling. Goodbye.",
}
for d in range(10):
    SPEECH[f"digit-{d}"] = str(d)
for n in (10, 20, 30, 40, 50, 60, 70, 80, 90):
    SPEECH[f"number-{n}"] = str(n)
for n in range(11, 20):
    SPEECH[f"number-{n}"] = str(n)


def write(name, pcm16):
    with wave.open(os.path.join(HERE, f"{name}.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm16)


def speak(text):
    out = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "160", "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        frames = w.readframes(w.getnframes())
        rate = w.getframerate()
    pcm, _ = audioop.ratecv(frames, 2, 1, rate, RATE, None)
    return pcm


def music(seconds=8.0):
    """A slow arpeggio (C major, A minor) with soft attack and decay: audible,
    never silent for long, and loops without a click."""
    notes = [261.63, 329.63, 392.0, 523.25, 220.0, 261.63, 329.63, 440.0]
    per = seconds / len(notes)
    samples = []
    for i in range(int(seconds * RATE)):
        t = i / RATE
        k = int(t / per)
        local = t - k * per
        env = min(1.0, local / 0.05) * math.exp(-local * 1.5)
        f = notes[k % len(notes)]
        v = 0.25 * env * (math.sin(2 * math.pi * f * t) + 0.3 * math.sin(4 * math.pi * f * t))
        samples.append(int(max(-1.0, min(1.0, v)) * 32767))
    return b"".join(s.to_bytes(2, "little", signed=True) for s in samples)


if __name__ == "__main__":
    for name, text in SPEECH.items():
        write(name, speak(text))
    write("music-on-hold", music())
