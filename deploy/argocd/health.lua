-- Argo CD health check for kage.dev/AgeSecret (kage-controller's kstatus conditions).
-- Argo CD runs this with the live object in `obj` and reads the returned table.
-- Written for Lua 5.1 (Argo CD embeds gopher-lua); tested with Debian's lua5.4 against
-- deploy/argocd/testdata (tests/tests/deploy.rs).
--
--   spec.suspend: true                       -> Suspended
--   status missing, or observedGeneration
--   lags metadata.generation                 -> Progressing (the controller has not seen this spec)
--   Ready=True                               -> Healthy
--   Ready=False, reason Suspended            -> Suspended
--   Ready=False, any other reason            -> Degraded ("<reason>: <message>")
--   no Ready condition yet, or Unknown       -> Progressing
local hs = {}

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "AgeSecret is suspended (spec.suspend: true); its Secret is left as it is"
  return hs
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for kage-controller to decrypt the AgeSecret"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for kage-controller to observe generation " .. tostring(generation)
  return hs
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

-- A Ready condition written for an older generation is stale, like observedGeneration above.
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for kage-controller to observe generation " .. tostring(generation)
  return hs
end

local reason = ready.reason or "Unknown"
local message = ready.message or ""

if ready.status == "True" then
  hs.status = "Healthy"
  if message ~= "" then
    hs.message = message
  else
    hs.message = "Secret is up to date"
  end
  return hs
end

if ready.status == "False" then
  if reason == "Suspended" then
    hs.status = "Suspended"
  else
    hs.status = "Degraded"
  end
  if message ~= "" then
    hs.message = reason .. ": " .. message
  else
    hs.message = reason
  end
  return hs
end

hs.status = "Progressing"
hs.message = "Ready is " .. tostring(ready.status) .. ": " .. reason
return hs
