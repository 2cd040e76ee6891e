# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# GENERATED from plugins/module_utils/workspace_spec.py WORKSPACE_OPTIONS: do not edit by hand. Regenerate with
#   python tests/unit/plugins/doc_fragments/test_workspace_fragment.py --write

from __future__ import annotations


class ModuleDocFragment:
    # The options of one workspace, at the top level of perry_workspace and in each of its `workspaces` entries.
    DOCUMENTATION = r'''
options:
  name:
    description:
    - Workspace name, 1-63 characters of V(a-z), V(0-9) and V(-), starting and ending with a letter or digit (Perry's rule).
      V(@host) is reserved.
    - Mutually exclusive with O(workspaces).
    type: str
  state:
    description:
    - V(present) the container exists with the wanted spec (a new one is created, not started; a recreated one keeps its
      running state; a paused one stays paused). If it runs, O(files) and the worker are synced as for V(started).
    - V(started) exists and runs (a paused container is unpaused), and accepts C(exec) (bounded by O(start_timeout)).
    - V(stopped) exists and is stopped. V(restarted) is stopped and started again.
    - V(absent) the container is removed; volumes are kept unless O(purge=true).
    type: str
    default: started
    choices:
    - present
    - started
    - stopped
    - restarted
    - absent
  image:
    description:
    - Workspace image, for example the one the P(perry.fleet.image#role) role builds (C(localhost/perry:latest)).
    - Required unless O(state=absent). Its id is part of the spec, so a rebuilt image recreates the container.
    type: str
  env:
    description:
    - 'Environment for the workspace user''s shells (values are strings): written in place as C(~/.config/perry/env.sh)
      (mode 0644, owned by the workspace user), which the image''s login and interactive shells load before C(secrets.env).
      Not in the container''s engine config (which keeps only perry.fleet''s own variables) nor in the spec hash. C(DOCKER_HOST)
      is set through O(workspace_docker_host).'
    - 'Exception: the keys an image''s entrypoint reads at container start (C(SSH_PUBLIC_KEY), C(PERRY_DOCKERD_ARGS), C(PERRY_DOCKERD_WAIT),
      C(WORKSPACE_REPO_URL), C(WORKSPACE_REPO_BRANCH)) stay in the container''s config and spec; changing one of them recreates
      the container.'
    - 'Changing a value or a key is applied in the running container: no recreate, running processes keep their environment
      and new shells see the new values (a workspace that is not running gets the file from the first run that finds it
      running, such as O(state=started)). Removing every key leaves the last file in place; set a key to an empty value
      instead. A container created by perry.fleet 0.1.0 keeps the env it was created with in its engine config until something
      else recreates it; the file overrides those values and unsets removed keys in its new shells.'
    - Each C(KEY=value) line may have at most 65535 bytes; longer is refused before anything is created.
    type: dict
    default: {}
  secret_env:
    description:
    - 'Secret environment (API keys, tokens): written in place as C(~/.config/perry/secrets.env) (mode 0600, owned by the
      workspace user), which the image''s login and interactive shells load. Never in the container''s engine config (C(inspect)
      shows no value), the spec hash, results, diffs or logs.'
    - 'Changing a value or a key is applied in the running container: no recreate, running processes (agents) keep their
      environment and new shells see the new values. Removing every key leaves the last file in place; set the key to an
      empty value instead to revoke it.'
    type: dict
    default: {}
  workspace_docker_host:
    description:
    - Engine URL forwarded into a O(runtime=podman) workspace as C(DOCKER_HOST), for example C(tcp://podman-in-podman:2375),
      so the agent's C(docker) commands reach that engine. Refused with O(runtime=docker), whose workspaces run their own
      engine.
    - 'This is not the engine the module talks to: that is O(engine_url).'
    - The alias C(docker_host) (the name until 0.1.0, which community.docker users read as the daemon to talk to) is deprecated
      and will be removed in 2.0.0.
    type: str
    aliases:
    - docker_host
  user_engine_socket:
    description:
    - 'Rootless O(runtime=podman) only: path on this host of the API socket of the user''s own rootless podman (for example
      C(/run/user/1000/podman/podman.sock), served by C(systemctl --user enable --now podman.socket) or C(podman system
      service --time=0)), given to the workspace as its container engine. Its directory is mounted at C(/run/perry-user-engine),
      where only the container''s root (that host user) may open it; the entrypoint relays it to the workspace user at C(/run/perry-engine/podman.sock),
      the workspace''s C(DOCKER_HOST).'
    - 'Whoever holds that socket holds every container of the user: so a workspace with it must be the only workspace of
      that user''s podman (refused, before anything is created, while another one exists or is listed). A socket owned by
      root is refused: root''s engine is root on the host.'
    - 'Mutually exclusive with O(workspace_docker_host). Part of the spec: setting or changing it recreates the container
      (volumes are kept).'
    type: str
  privileged:
    description:
    - Run privileged. Defaults to the runtime profile (V(true) for docker, V(false) for podman); V(true) is refused for
      podman.
    type: bool
  memory:
    description:
    - Memory limit, for example V(4g) (swap limit twice that, as the engines set it).
    - 'O(memory), O(cpus) and O(pids_limit) are changed in place with O(runtime=docker) (C(docker update): same container,
      running processes keep going); unsetting O(memory) or O(cpus) there, and any change with O(runtime=podman) (podman
      4.3 cannot update a container''s limits), recreates the container.'
    type: str
  cpus:
    description:
    - CPU limit, for example V(1.5).
    type: float
  pids_limit:
    description:
    - Maximum number of processes in the container.
    type: int
  ssh_port:
    description:
    - Host port for SSH (container port 22). Default is the one the workspace has, else the first free one.
    - Two workspaces of one task asking for the same port are refused before anything is created.
    type: int
  worker_port:
    description:
    - Host port (on 127.0.0.1 only) for the worker's port 7392, O(runtime=podman) only. Default is the one the workspace
      has, else the first free one.
    type: int
  bind_address:
    description:
    - Host address the SSH port is published on. The worker port is always published on 127.0.0.1.
    type: str
    default: 127.0.0.1
  labels:
    description:
    - Extra container labels (values are strings), merged with the ones perry.fleet sets. Keys under C(perry.fleet.) and
      C(workspace.name)/C(workspace.managed) are perry.fleet's own and refused.
    - 'Labels are part of the spec: changing them recreates the container (volumes are kept).'
    type: dict
    default: {}
  ports:
    description:
    - Extra published ports, beyond SSH and the worker (for example a dev server). Each host port may be asked for once
      per task; one equal to this workspace's SSH or worker port is refused.
    - 'Part of the spec: changing them recreates the container (volumes are kept).'
    type: list
    default: []
    elements: dict
    suboptions:
      container_port:
        description:
        - Port inside the workspace, 1-65535; not 22 (SSH) nor 7392 (the worker, which is published on 127.0.0.1 only).
        type: int
        required: true
      host_port:
        description:
        - Host port, 1-65535; never allocated, so give one no other workspace or process holds (a taken one is refused before
          anything is created).
        type: int
        required: true
      bind_address:
        description:
        - Host IPv4 address to publish on. Default is the workspace's O(bind_address).
        type: str
      protocol:
        description:
        - V(tcp) or V(udp). Only a V(tcp) host port is probed for a process holding it.
        type: str
        default: tcp
        choices:
        - tcp
        - udp
  mounts:
    description:
    - Extra named volumes to mount, beyond the home and DinD volumes, such as the socket volume of the workspace's own container
      engine (the workspace role's O(perry.fleet.workspace#role:main:perry_workspace_engine)).
    - 'Part of the spec: changing them recreates the container (volumes are kept). They are not the workspace''s volumes:
      O(purge) leaves them.'
    type: list
    default: []
    elements: dict
    suboptions:
      source:
        description:
        - 'Name of an engine volume (created by the engine when missing), for example the socket volume of an engine container.
          Host paths are refused, as are the home volumes of workspaces (C(workspace-*)): one workspace never mounts another''s
          data.'
        type: str
        required: true
      target:
        description:
        - Absolute path in the container, for example C(/run/perry-engine). Not the home, the DinD directory, nor a system
          directory (C(/), C(/etc), C(/usr), C(/proc), ...).
        type: str
        required: true
      readonly:
        description:
        - Mount read-only.
        type: bool
        default: false
  purge:
    description:
    - 'With O(state=absent), also remove the home volume and the DinD volume: only volumes whose labels say they are this
      workspace''s (an unlabelled one only with O(adopt=true) or when this workspace''s container mounts it). A volume labelled
      for another workspace (C(workspace-x-docker) is the home of a workspace C(x-docker)) is kept and named in RV(workspaces[].notes).'
    - Refused, with the containers' names and before anything is removed, while any other container uses one of the volumes
      (volumes are never force-removed).
    type: bool
    default: false
  adopt:
    description:
    - Recreate a C(workspace-<name>) container that perry.fleet did not create (for example one made by Perry itself), keeping
      its volumes. Without it such a container is an error and is left alone.
    - Also needed to mount an existing volume without perry.fleet's labels (made by Perry, by hand, or holding someone's
      data) as the workspace's home or DinD volume; without it that is refused before anything is created. Once this workspace's
      container mounts it, later runs and O(purge) treat it as the workspace's.
    - A volume whose labels name another workspace or role is never used, adopt or not.
    type: bool
    default: false
  files:
    description:
    - Files to place in every running workspace's home, such as Claude Code's C(~/.claude/.credentials.json), C(~/.gitconfig)
      or C(~/.ssh/authorized_keys). Owned by C(workspace); parent directories are created with 0700 under C(.ssh) and 0755
      elsewhere (never a recursive chmod).
    - A manifest of paths, modes and content hashes in the workspace, checked together with each managed file's mode and
      hash, makes an unchanged set cost one exec, or none when both can be read in the home volume on this host (root with
      a local engine); a managed file deleted or edited in the workspace is placed again.
    - Files are read and written as the C(workspace) user, never root, so a link planted in the home cannot lead a write
      outside what that user may write; contents travel on the exec's stdin, never on a command line.
    - A dest that is a directory in the workspace is refused (in check mode too); nothing is placed.
    type: list
    default: []
    elements: dict
    suboptions:
      dest:
        description:
        - Path in the workspace home (C(~/...) or relative to C(/home/workspace)); must stay inside it.
        type: str
        required: true
      content:
        description:
        - File content (secret; never logged). Exactly one of O(files[].content) and O(files[].src).
        type: str
      src:
        description:
        - 'Path of a file on the managed host to copy, or of a directory (a credential directory such as C(~/.config/gh)):
          every file under it is placed under O(files[].dest), directories created there are 0700; at most 1000 files and
          16 MiB; a symbolic link in it is refused, never followed.'
        type: path
      mode:
        description:
        - Octal mode. Default follows Perry, V(0600) under C(.ssh) (except C(*.pub), C(config), C(known_hosts)) and for
          credential files (C(.credentials.json), C(auth.json), C(.git-credentials)), V(0644) otherwise. For a directory
          O(files[].src) it applies to every file in it (default V(0600), Perry's mode for secrets).
        type: str
  workspaces:
    description:
    - Several workspaces in one task (one inspect for all). Each entry needs C(name) and may override any other workspace
      option; module-level values are the defaults.
    - Mutually exclusive with O(name).
    type: list
    elements: dict
    suboptions:
      name:
        description:
        - Workspace name (same rule as O(name)).
        type: str
        required: true
      state:
        description:
        - Overrides O(state).
        type: str
        choices:
        - present
        - started
        - stopped
        - restarted
        - absent
      image:
        description:
        - Overrides O(image).
        type: str
      env:
        description:
        - Overrides O(env).
        type: dict
      secret_env:
        description:
        - Overrides O(secret_env).
        type: dict
      workspace_docker_host:
        description:
        - Overrides O(workspace_docker_host).
        type: str
        aliases:
        - docker_host
      user_engine_socket:
        description:
        - Overrides O(user_engine_socket).
        type: str
      privileged:
        description:
        - Overrides O(privileged).
        type: bool
      memory:
        description:
        - Overrides O(memory).
        type: str
      cpus:
        description:
        - Overrides O(cpus).
        type: float
      pids_limit:
        description:
        - Overrides O(pids_limit).
        type: int
      ssh_port:
        description:
        - Overrides O(ssh_port).
        type: int
      worker_port:
        description:
        - Overrides O(worker_port).
        type: int
      bind_address:
        description:
        - Overrides O(bind_address).
        type: str
      labels:
        description:
        - Overrides O(labels).
        type: dict
      ports:
        description:
        - Overrides O(ports).
        type: list
        elements: dict
        suboptions:
          container_port:
            description:
            - Port inside the workspace, 1-65535; not 22 (SSH) nor 7392 (the worker, which is published on 127.0.0.1 only).
            type: int
            required: true
          host_port:
            description:
            - Host port, 1-65535; never allocated, so give one no other workspace or process holds (a taken one is refused
              before anything is created).
            type: int
            required: true
          bind_address:
            description:
            - Host IPv4 address to publish on. Default is the workspace's O(bind_address).
            type: str
          protocol:
            description:
            - V(tcp) or V(udp). Only a V(tcp) host port is probed for a process holding it.
            type: str
            default: tcp
            choices:
            - tcp
            - udp
      mounts:
        description:
        - Overrides O(mounts).
        type: list
        elements: dict
        suboptions:
          source:
            description:
            - 'Name of an engine volume (created by the engine when missing), for example the socket volume of an engine
              container. Host paths are refused, as are the home volumes of workspaces (C(workspace-*)): one workspace never
              mounts another''s data.'
            type: str
            required: true
          target:
            description:
            - Absolute path in the container, for example C(/run/perry-engine). Not the home, the DinD directory, nor a
              system directory (C(/), C(/etc), C(/usr), C(/proc), ...).
            type: str
            required: true
          readonly:
            description:
            - Mount read-only.
            type: bool
            default: false
      purge:
        description:
        - Overrides O(purge).
        type: bool
      adopt:
        description:
        - Overrides O(adopt).
        type: bool
      files:
        description:
        - Overrides O(files).
        type: list
        elements: dict
        suboptions:
          dest:
            description:
            - Path in the workspace home (C(~/...) or relative to C(/home/workspace)); must stay inside it.
            type: str
            required: true
          content:
            description:
            - File content (secret; never logged). Exactly one of O(files[].content) and O(files[].src).
            type: str
          src:
            description:
            - 'Path of a file on the managed host to copy, or of a directory (a credential directory such as C(~/.config/gh)):
              every file under it is placed under O(files[].dest), directories created there are 0700; at most 1000 files
              and 16 MiB; a symbolic link in it is refused, never followed.'
            type: path
          mode:
            description:
            - Octal mode. Default follows Perry, V(0600) under C(.ssh) (except C(*.pub), C(config), C(known_hosts)) and
              for credential files (C(.credentials.json), C(auth.json), C(.git-credentials)), V(0644) otherwise. For a directory
              O(files[].src) it applies to every file in it (default V(0600), Perry's mode for secrets).
            type: str
'''
