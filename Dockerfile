# The `foreshock` CLI: `docker run IMAGE worker`, `docker run IMAGE produce SCENARIO ...`.
FROM python:3.11.15-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bench/ bench/
COPY foreshock/ foreshock/
COPY infra/ infra/
COPY models/ models/
COPY producers/ producers/
COPY streams/ streams/

# faust-streaming ships only an sdist and compiles Cython speedups, so a C compiler
# is needed while installing; it is removed again in the same layer.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* /src

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin foreshock
USER foreshock
# Faust keeps its local state (<app id>-data/) in the working directory.
WORKDIR /home/foreshock

ENTRYPOINT ["foreshock"]
CMD ["--help"]
