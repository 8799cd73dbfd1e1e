// emotau report.html: the conversation browser. Model text only ever goes through
// textContent (never innerHTML), so a message holding markup shows as text.
(function(){
  var data = JSON.parse(document.getElementById('episodes-data').textContent);
  var eps = data.episodes, ref = data.reference;
  function el(tag, cls, text){var e=document.createElement(tag); if(cls) e.className=cls;
    if(text!==undefined && text!==null) e.textContent=String(text); return e;}
  function outcome(e){return e.success===true?'success':(e.success===false?'failure':'not scored');}
  function opt(sel, value, label){var o=el('option',null,label); o.value=value; sel.appendChild(o);}
  var fv=document.getElementById('f-variant'), ft=document.getElementById('f-task'),
      fo=document.getElementById('f-outcome'), cv=document.getElementById('compare-variant');
  data.variants.forEach(function(v){opt(fv,v,v); opt(cv,v,v);});
  var tasks=[]; eps.forEach(function(e){if(tasks.indexOf(e.task_id)<0) tasks.push(e.task_id);});
  tasks.sort(function(a,b){return a-b;}).forEach(function(t){opt(ft,String(t),String(t));});
  if(ref){cv.value=ref;}
  var list=document.getElementById('episode-list').querySelector('tbody'), current=null;
  function render(){
    list.textContent='';
    var n=0;
    eps.forEach(function(e, i){
      if(fv.value && e.variant!==fv.value) return;
      if(ft.value && String(e.task_id)!==ft.value) return;
      if(fo.value && outcome(e)!==fo.value) return;
      var tr=el('tr'); tr.dataset.index=i; n++;
      var cells=[e.task_id, e.variant, e.trial, outcome(e), e.num_turns, e.termination];
      cells.forEach(function(c){
        tr.appendChild(el('td', null, c));});
      tr.lastChild.previousSibling.previousSibling.className=
        outcome(e)==='success'?'ok':(outcome(e)==='failure'?'bad':'na');
      tr.addEventListener('click', function(){show(i);});
      if(current===i) tr.className='sel';
      list.appendChild(tr);
    });
    document.getElementById('episode-count').textContent=n+' of '+eps.length+' episodes';
  }
  function conversation(box, e, missing){
    box.textContent='';
    if(!e){box.appendChild(el('p','na',missing));return;}
    var head=el('div','head');
    head.appendChild(el('b',null,e.variant+' - task '+e.task_id+', trial '+e.trial+': '));
    head.appendChild(el('span', outcome(e)==='success'?'ok':'bad',
      outcome(e)+' (reward '+(e.reward===null?'-':e.reward)+', '+e.termination+')'));
    box.appendChild(head);
    if(e.error) box.appendChild(el('div','tool err','error: '+e.error));
    e.turns.forEach(function(t){
      var m=el('div','msg '+(t.role==='user'?'user':(t.role==='agent'?'agent':'env')));
      m.appendChild(el('span','role',t.role==='user'?'customer':t.role));
      if(t.content) m.appendChild(el('span','text',t.content));
      (t.tool_calls||[]).forEach(function(c){
        var d=el('div','tool'+(c.error?' err':''));
        d.appendChild(el('div',null,c.name+'('+JSON.stringify(c.arguments)+')'));
        d.appendChild(el('div',null,'-> '+(typeof c.result==='string'?c.result:JSON.stringify(c.result))));
        m.appendChild(d);
      });
      box.appendChild(m);
    });
  }
  function show(i){
    current=i; var e=eps[i];
    Array.prototype.forEach.call(list.children,function(tr){
      tr.className=(Number(tr.dataset.index)===i)?'sel':'';});
    conversation(document.getElementById('conv-left'), e, '');
    if(cv.value===e.variant){  // never the same episode twice: the next other arm
      var others=data.variants.filter(function(v){return v!==e.variant;});
      cv.value=others.length?others[0]:'';
    }
    var other=null;
    eps.forEach(function(o){
      if(o.variant===cv.value&&o.task_id===e.task_id&&o.trial===e.trial) other=o;});
    conversation(document.getElementById('conv-right'), other, cv.value?
      'No episode of this task and trial under '+cv.value+' in this report.':
      'Pick a variant to see this task and trial side by side.');
  }
  [fv,ft,fo].forEach(function(s){s.addEventListener('change', render);});
  cv.addEventListener('change', function(){if(current!==null) show(current);});
  render();
  if(eps.length) show(Number(list.firstChild ? list.firstChild.dataset.index : 0));
})();
