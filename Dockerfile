# One image for every Python service of the mesh (compose.yml picks the module to run).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gen ./gen
COPY services ./services
COPY mesh ./mesh
COPY proto ./proto
COPY third_party ./third_party
COPY policies ./policies
RUN pip install --no-cache-dir -e '.[dev]'
ENV TRADE_HOST=0.0.0.0 TRADE_ENV=compose
EXPOSE 8114 8115 8119
CMD ["python", "-m", "services.authn"]
