"""A Python program whose flame graph is deep: its imports nest dozens of native frames
deeper than its work, a 60-deep recursion doing arithmetic for about 1.5 s.
scripts/check-svg-browser.sh profiles it and checks that the work is on the first screen."""

import argparse
import asyncio
import decimal
import email.mime.text
import http.client
import json
import time
import unittest
import xml.dom.minidom


def work():
    total = 0
    for i in range(20000):
        total += (i * i) % 7
    return total


def descend(depth):
    if depth == 0:
        return work()
    return descend(depth - 1) + 1


end = time.monotonic() + 1.5
while time.monotonic() < end:
    descend(60)
