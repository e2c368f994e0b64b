# media-mcp over streamable HTTP. Build: docker build -t media-mcp .
# Run:   docker run -p 8000:8000 -e MEDIA_MCP_HTTP_TOKEN=<secret> -v media-data:/data media-mcp
# (add WIX_API_KEY and WIX_SITE_ID to serve a real site instead of the embedded library)
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY media_mcp ./media_mcp
COPY prompts ./prompts
RUN python -m venv /opt/media-mcp \
    && /opt/media-mcp/bin/pip install . \
    && /opt/media-mcp/bin/python -m compileall -q /opt/media-mcp

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 media && mkdir /data && chown media:media /data
COPY --from=build /opt/media-mcp /opt/media-mcp
ENV PATH=/opt/media-mcp/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MEDIA_MCP_DATA_DIR=/data \
    MEDIA_MCP_AUDIT_LOG=stderr
USER media
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
ENTRYPOINT ["media-mcp"]
CMD ["serve", "--transport", "http", "--host", "0.0.0.0", "--port", "8000"]
