"""`python -m video_emotion <stage> ...`: the CLI without its installed script (the workflow's conda envs run the
project from the source tree)."""

from video_emotion.cli import main

if __name__ == "__main__":
    main()
