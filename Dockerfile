# The rlhf image: the four service binaries (learner, rollout, reward, reference) and the rlhf CLI
# in /opt/rlhf/bin on Debian 12, running as the unprivileged user 10001 (what the Kubernetes
# manifests in deploy/k8s expect: runAsNonRoot, runAsUser 10001, read-only root filesystem).
#   docker build -t ghcr.io/example/rlhf:latest .
# The binaries use the CPU (LibTorch from Debian); models and configs are mounted at run time.

# --- build: the project's own set-up and build scripts -----------------------------------------
FROM debian:bookworm AS build
WORKDIR /src
COPY . .
RUN ["bash", "scripts/setup.sh"]
RUN ["bash", "scripts/build.sh", "--target", "rlhf", "learner", "rollout", "reward", "reference"]

# --- runtime: the shared libraries the binaries load, and the binaries -------------------------
FROM debian:bookworm-slim
COPY scripts/setup.sh /opt/rlhf/setup.sh
RUN ["bash", "/opt/rlhf/setup.sh", "--runtime"]
RUN ["rm", "-rf", "/var/lib/apt/lists", "/opt/rlhf/setup.sh"]
RUN ["groupadd", "--gid", "10001", "rlhf"]
RUN ["useradd", "--uid", "10001", "--gid", "10001", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "rlhf"]
COPY --from=build /src/build/release/cli/rlhf /opt/rlhf/bin/rlhf
COPY --from=build /src/build/release/services/learner/learner /opt/rlhf/bin/learner
COPY --from=build /src/build/release/services/rollout/rollout /opt/rlhf/bin/rollout
COPY --from=build /src/build/release/services/reward/reward /opt/rlhf/bin/reward
COPY --from=build /src/build/release/services/reference/reference /opt/rlhf/bin/reference
ENV PATH=/opt/rlhf/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 10001:10001
WORKDIR /tmp
# `rlhf local` finds the services next to itself; in Kubernetes each container names its binary.
CMD ["/opt/rlhf/bin/rlhf", "--help"]
