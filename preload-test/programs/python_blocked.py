"""Two threads blocked below Python functions: one sleeps, one reads an empty pipe until the
main thread writes to it."""
import os
import threading
import time


def sleeper_inner():
    time.sleep(1.2)


def sleeper():
    sleeper_inner()


def reader_inner(fd):
    return os.read(fd, 1)


def reader(fd):
    reader_inner(fd)


def main():
    r, w = os.pipe()
    threads = [
        threading.Thread(target=sleeper, name="sleeper"),
        threading.Thread(target=reader, args=(r,), name="reader"),
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    os.write(w, b"x")
    for thread in threads:
        thread.join()


main()
